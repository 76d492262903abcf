// Drives the official ElizaOS JavaScript client (@elizaos/api-client, from npm) for a Python test, and checks
// what it returned against the client's own TypeScript declarations. One JSON command per stdin line, one JSON
// answer per stdout line:
//   {"id", "call": "sessions.getMessages", "args": [...]}  ->  {"id", "result"}  or  {"id", "error": {...}}
//   {"id", "check": [{"name", "call", "value"}]}           ->  {"id", "diagnostics": [{name, message}]}
// An argument {"$date": "<ISO 8601>"} becomes a Date (the client takes Dates for `before`/`after`).
// The check compiles, with TypeScript's compiler and `noEmit`, a program assigning each value (as a literal)
// to the JSON form of the declared return type of the client method that produced it: no shape is copied here.
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ElizaClient } from '@elizaos/api-client';
import ts from 'typescript';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CHECK_FILE = path.join(HERE, '__declared_types_check__.ts');  // virtual: never written to disk
const client = ElizaClient.create({ baseUrl: process.env.SERVER_URL });

const revive = (value) => {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object') {
    if ('$date' in value) return new Date(value.$date);
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, revive(item)]));
  }
  return value;
};

async function call(name, args) {
  const [service, method] = name.split('.');
  try {
    const result = await client[service][method](...revive(args ?? []));
    return { result: result === undefined ? { $undefined: true } : result };
  } catch (error) {
    return { error: { name: error.name, code: error.code, message: error.message, status: error.status ?? null } };
  }
}

const PRELUDE = `import type { ElizaClient } from '@elizaos/api-client';
// The JSON form of a declared type, as JSON.parse hands it to the client: a Date travels as its ISO string,
// an enum member as its string value; arrays and objects are read-only, as \`as const\` literals are.
type Wire<T> = T extends Date ? string
  : T extends string ? \`\${T}\`
  : T extends number | boolean | null | undefined ? T
  : T extends (...args: never[]) => unknown ? never
  : T extends readonly (infer Item)[] ? readonly Wire<Item>[]
  : T extends object ? { readonly [K in keyof T]: Wire<T[K]> }
  : T;
// What \`client.<service>.<method>()\` is declared to resolve to, in its JSON form.
type Returned<Call extends string> = Call extends \`\${infer S}.\${infer M}\`
  ? S extends keyof ElizaClient ? M extends keyof ElizaClient[S]
    ? ElizaClient[S][M] extends (...args: never[]) => Promise<infer R> ? Wire<R> : never
    : never : never
  : never;
// A control: a value the declarations forbid must be reported, or this directive is (the check is live).
// @ts-expect-error 'sleeping' is not a status SessionsHealthResponse allows
const control: Returned<'sessions.checkHealth'> = { status: 'sleeping', activeSessions: 0, timestamp: '' } as const;
`;

function checkTypes(items) {
  const lines = PRELUDE.split('\n');
  const owner = new Map();  // line number -> the name of the value checked there
  items.forEach((item, i) => {
    // Through a variable, so extra fields are allowed (TypeScript checks excess properties of fresh literals
    // only): the declarations describe what a reader may rely on, not everything a server may add.
    owner.set(lines.length, item.name);
    lines.push(`const value${i} = ${JSON.stringify(item.value)} as const;`);
    owner.set(lines.length, item.name);
    lines.push(`const checked${i}: Returned<${JSON.stringify(item.call)}> = value${i};`);
  });
  const source = lines.join('\n');
  const options = {
    strict: true, noEmit: true, skipLibCheck: true, types: [], target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (file, version, ...rest) => (file === CHECK_FILE
    ? ts.createSourceFile(file, source, version) : getSourceFile.call(host, file, version, ...rest));
  host.fileExists = (file) => file === CHECK_FILE || fileExists.call(host, file);
  host.readFile = (file) => (file === CHECK_FILE ? source : readFile.call(host, file));
  const program = ts.createProgram([CHECK_FILE], options, host);
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const line = diagnostic.file && diagnostic.start !== undefined
      ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line : -1;
    return { name: owner.get(line) ?? `line ${line + 1}`,
             message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n') };
  });
}

readline.createInterface({ input: process.stdin })
  .on('line', async (line) => {
    const command = JSON.parse(line);
    const answer = command.check ? { diagnostics: checkTypes(command.check) } : await call(command.call, command.args);
    console.log(JSON.stringify({ id: command.id, ...answer }));
  })
  .on('close', () => process.exit(0));
