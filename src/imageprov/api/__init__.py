"""The launch gate: an HTTP API and a Kubernetes admission webhook over stored verdicts.

It uses the store, the policy and the model only, so no cloud is called while a
launch waits for its answer.
"""

from imageprov.api.app import create_app
from imageprov.api.gate import Gate, token_hash

__all__ = ["Gate", "create_app", "token_hash"]
