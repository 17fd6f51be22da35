"""The approved-builder policy: its YAML schema and how it judges an image."""

from imageprov.policy.evaluate import Evaluation, evaluate_images
from imageprov.policy.schema import Policy, load_policy

__all__ = ["Evaluation", "Policy", "evaluate_images", "load_policy"]
