/**
 * Libraries the pages use, served from the pinned npm packages themselves (no copy in the repository, no build
 * step): the files are imported as text, so they are part of the module graph (and of a compiled binary), and
 * `StaticFiles` serves them under `/vendor/` like any page file.
 *
 * uPlot (MIT, https://github.com/leeoniya/uPlot) draws the console's report chart.
 *
 * @module
 */
import uplotJs from "uplot/dist/uPlot.esm.js" with { type: "text" };
import uplotCss from "uplot/dist/uPlot.min.css" with { type: "text" };

/** URL path → file text and content type. */
export const VENDOR_FILES: Readonly<Record<string, { text: string; type: string }>> = {
  "/vendor/uplot.js": { text: uplotJs, type: "text/javascript; charset=utf-8" },
  "/vendor/uplot.css": { text: uplotCss, type: "text/css; charset=utf-8" },
};
