// Parse a Mermaid diagram with Mermaid's own parser; print what it read as JSON.
//   node parse.mjs FILE    -> {"type", "vertices": [[id, text, classes]], "edges": [[from, to, label, style]],
//                              "subgraphs": [[id, title, nodes]]}; exit 1 with the parser's message on an error.
// Mermaid sanitizes labels with DOMPurify, which needs a DOM: jsdom stands in for the browser.
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');

const text = readFileSync(process.argv[2], 'utf8');
mermaid.initialize({ startOnLoad: false });
try {
  const parsed = await mermaid.parse(text);
  const db = (await mermaid.mermaidAPI.getDiagramFromText(text)).db;
  console.log(JSON.stringify({
    type: parsed.diagramType,
    vertices: [...db.getVertices().entries()].map(([id, v]) => [id, v.text, v.classes]),
    edges: db.getEdges().map((e) => [e.start, e.end, e.text, e.style || null]),
    subgraphs: db.getSubGraphs().map((s) => [s.id, s.title, s.nodes]),
  }));
} catch (error) {
  console.error(String(error.message || error));
  process.exit(1);
}
