"""Offline triage of customer messages: intent, sentiment and urgency, and the details they contain.

Pure functions and a classifier trained at start from `config/triage/intent-examples.csv`; the
escalation engine (`agent_bridge.ai.escalation`) turns their outputs and the routing rules into a
handoff decision.
"""

from agent_bridge.ai.triage.details import extract_details
from agent_bridge.ai.triage.intents import ExamplesError, IntentClassifier, IntentPrediction, read_examples
from agent_bridge.ai.triage.sentiment import Sentiment, analyse_sentiment

__all__ = [
    "ExamplesError",
    "IntentClassifier",
    "IntentPrediction",
    "Sentiment",
    "analyse_sentiment",
    "extract_details",
    "read_examples",
]
