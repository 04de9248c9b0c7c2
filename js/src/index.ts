// Entry point of the bundle that anywidget loads as the widget's _esm.

import type { AnyWidget } from "@anywidget/types";

import { describe } from "./dom";
import { renderImage } from "./image";
import type { ImageExplainerModel } from "./types";
import "./widget.css";

const widget: AnyWidget<ImageExplainerModel> = {
  render({ model, el }) {
    try {
      return renderImage({ model, el });
    } catch (error) {
      // Nothing could be built: say so where the widget would be.
      const message = document.createElement("pre");
      message.className = "ssx-error";
      message.setAttribute("role", "alert");
      message.textContent = `ssxwidgets could not render: ${describe(error)}`;
      el.append(message);
      return undefined;
    }
  },
};

export default widget;
