"""The widgets: presentation of explanations in Jupyter.

Usage::

    from ssxwidgets.widgets import ImageExplainer, explain_image
    w = explain_image(model, image, method="saliency")
"""

from .image import ImageExplainer, explain_image

__all__ = ["ImageExplainer", "explain_image"]
