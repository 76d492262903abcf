// Harness, not from the guide: the names the guide's snippet expects its page to define.
const sessionId = process.env.SESSION_ID;
const agentId = process.env.AGENT_ID;
function updateMessageList(message) {
  console.log(JSON.stringify({ kind: 'updateMessageList', payload: message }));
}
