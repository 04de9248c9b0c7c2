"""The embedded default: generated data with ground truth and models trained here.

Usage::

    from ssxwidgets import demo
    data = demo.shapes(64, seed=1)          # images, labels, masks, class_names
    probe = demo.load_probe()               # encoder + linear probe, class logits
    table = demo.credit(1000)               # data, target, feature_names, drivers

Every model is trained by ``python -m ssxwidgets.demo.train <name>`` and its
weights ship in ``ssxwidgets/demo/weights`` with a model card beside them.
"""

from .image_models import (
    load_encoder,
    load_probe,
    load_random_encoder,
    load_shortcut_classifier,
)
from .shapes import CLASS_NAMES, ShapesData, shapes
from .table_models import (
    load_credit_model,
    load_medical_classifier,
    load_medical_encoder,
    load_medical_probe,
)
from .tables import CreditData, MedicalData, breast_cancer, credit

__all__ = [
    "CLASS_NAMES",
    "CreditData",
    "MedicalData",
    "ShapesData",
    "breast_cancer",
    "credit",
    "load_credit_model",
    "load_encoder",
    "load_medical_classifier",
    "load_medical_encoder",
    "load_medical_probe",
    "load_probe",
    "load_random_encoder",
    "load_shortcut_classifier",
    "shapes",
]
