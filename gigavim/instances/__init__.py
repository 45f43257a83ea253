"""Object instances from dense predictions: nuclei, buildings, fields.

`postprocess` turns class probabilities (or a foreground mask) into one integer id per object;
`metrics` scores instance maps against instance ground truth (AJI, PQ, object F1).
"""

from gigavim.instances.metrics import InstanceScores, match_instances
from gigavim.instances.postprocess import (
    haematoxylin_baseline,
    instances_from_foreground,
    instances_from_probabilities,
)

__all__ = [
    "InstanceScores",
    "haematoxylin_baseline",
    "instances_from_foreground",
    "instances_from_probabilities",
    "match_instances",
]
