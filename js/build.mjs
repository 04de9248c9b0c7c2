// Bundles the front end into ssxwidgets/static/ as ESM for anywidget.
// Usage: node build.mjs            one build
//        node build.mjs --watch    rebuild on change
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.join(here, "..", "ssxwidgets", "static");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: {
    widget: path.join(here, "src", "index.ts"),
  },
  outdir,
  bundle: true,
  format: "esm",
  target: ["es2022"],
  minify: !watch,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
};

if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
