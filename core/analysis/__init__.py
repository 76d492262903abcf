"""Conversation analysis: stage, intent, topics, sentiment, engagement and preferences per exchange."""

from core.analysis.conversation import analyze_exchange, initial_state, public_state

__all__ = ["analyze_exchange", "initial_state", "public_state"]
