"""Styles of the web chat (CSS and Gradio theme settings)."""
from __future__ import annotations

CSS = """
.gradio-container { max-width: 1180px !important; margin: 0 auto !important; }
#qa-header { padding: 18px 4px 6px; }
#qa-header h1 { font-size: 1.9rem; font-weight: 700; margin: 0; letter-spacing: -0.02em; }
#qa-header h1 .dot { color: var(--color-accent); }
#qa-header p { margin: 4px 0 0; color: var(--body-text-color-subdued); font-size: 0.98rem; }
#qa-chat { border-radius: 14px; }
#qa-chat .message { font-size: 0.97rem; line-height: 1.55; }
#qa-chat .placeholder { text-align: center; padding: 0 28px; }
#qa-chat .placeholder h3 { font-size: 1.25rem; margin-bottom: 6px; }
#qa-chat .placeholder p { color: var(--body-text-color-subdued); }
#qa-chat .examples { gap: 10px; padding: 0 20px 20px; }
#qa-chat .example { border: 1px solid var(--border-color-primary); border-radius: 12px; text-align: left;
  background: var(--background-fill-secondary); transition: border-color .15s, background .15s; }
#qa-chat .example:hover { border-color: var(--color-accent); background: var(--background-fill-primary); }
#qa-input textarea { font-size: 1rem; }
#qa-new { white-space: nowrap; align-self: stretch; }
.qa-panel-title { font-size: 0.8rem; font-weight: 700; text-transform: uppercase; letter-spacing: 0.08em;
  color: var(--body-text-color-subdued); margin: 2px 2px 10px; }
.qa-empty { color: var(--body-text-color-subdued); border: 1px dashed var(--border-color-primary);
  border-radius: 14px; padding: 22px; text-align: center; font-size: 0.95rem; }
.qa-card { background: var(--background-fill-primary); border: 1px solid var(--border-color-primary);
  border-radius: 14px; padding: 14px 16px; margin-bottom: 12px; box-shadow: 0 1px 3px rgba(15, 23, 42, 0.06); }
.qa-card-head { display: flex; gap: 12px; align-items: flex-start; }
.qa-num { flex: none; width: 26px; height: 26px; border-radius: 50%; background: var(--color-accent);
  color: #fff; font-weight: 700; font-size: 0.85rem; display: flex; align-items: center; justify-content: center; }
.qa-title { font-weight: 650; line-height: 1.35; word-break: break-word; }
.qa-meta { font-size: 0.82rem; color: var(--body-text-color-subdued); margin-top: 3px; }
.qa-meta b, .qa-also b { font-weight: 600; }
.qa-also { font-size: 0.82rem; color: var(--body-text-color-subdued); margin-top: 2px; }
#qa-sources .qa-passage { margin: 10px 0 0 !important; padding: 10px 12px; border-left: 3px solid var(--color-accent);
  background: var(--background-fill-secondary); border-radius: 0 10px 10px 0; font-size: 0.9rem;
  line-height: 1.55; white-space: pre-wrap; word-break: break-word; }
.qa-passage mark { background: #fde68a; color: #1f2937; padding: 1px 0; border-radius: 3px;
  -webkit-box-decoration-break: clone; box-decoration-break: clone; }
.qa-link { display: inline-block; margin-top: 8px; font-size: 0.82rem; }
.qa-note { font-size: 0.9rem; margin: 0 2px 12px; }
.qa-answerer { font-size: 0.8rem; color: var(--body-text-color-subdued); margin: 0 2px 10px; }
.qa-answerer-name { font-weight: 650; color: var(--body-text-color); }
footer { display: none !important; }
"""
THEME_KW = dict(primary_hue="indigo", secondary_hue="slate", neutral_hue="slate",
                font=["Inter", "ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])
