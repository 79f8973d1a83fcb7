"""The chat's Articles panel: the indexed articles, and (when writing is on) upload and delete.

Writing is on only when the server was started with a login or ``--allow-upload``
(:class:`~qa.library.LiveAssistant` ``writable``); otherwise the panel lists the articles, and no
upload or delete event exists, in the page or in the API. The chat keeps answering during an update.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Optional

import gradio as gr

from ..errors import QAError
from ..ingest import SUPPORTED_EXTS
from ..library import LiveAssistant, UploadError, Update

log = logging.getLogger("qa")

MAX_LISTED = 1000  # rows of the article list (the newest first)
ARTICLE_HEADERS = ["id", "title", "source", "date"]
RESULT_HEADERS = ["file", "result", "reason", "article ids"]


class ArticleHandlers:
    """Handlers of the Articles panel over ``live``."""

    def __init__(self, live: LiveAssistant):
        self.live = live

    def article_rows(self) -> list[list[str]]:
        arts = list(self.live.current.articles.values())
        arts.sort(key=lambda a: (a.date or "", a.id), reverse=True)
        return [[a.id, a.display_title, a.source or "", a.date or ""] for a in arts[:MAX_LISTED]]

    def summary(self, note: str = "") -> str:
        n = len(self.live.current.articles)
        shown = f" (the newest {MAX_LISTED} listed)" if n > MAX_LISTED else ""
        return (note + "\n\n" if note else "") + f"{n} articles in the index{shown}."

    def _done(self, update: Update, what: str) -> str:
        if update.build is None:
            return f"{what}; the index is unchanged."
        embedded = f" ({update.build.embedded} new passages embedded)" if update.files else ""
        return f"{what}; index updated in {update.seconds:.1f}s{embedded}."

    def upload(self, files: Optional[list[Any]]):
        """Upload handler: (file box cleared, per-file results, article list, status)."""
        paths = [getattr(f, "name", f) for f in (files or [])]
        if not paths:
            return None, gr.skip(), gr.skip(), gr.skip()
        try:
            update = self.live.add([(os.path.basename(str(p)), p) for p in paths])
        except UploadError as e:
            raise gr.Error(str(e)) from None
        except QAError as e:
            log.warning("upload failed: %s", e)
            raise gr.Error(str(e).split("\n", 1)[0][:300]) from None
        rows = [[f.name, f.status, f.reason, ", ".join(f.article_ids)] for f in update.files]
        counts = {s: sum(f.status == s for f in update.files) for s in ("added", "updated", "skipped")}
        what = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        return None, gr.update(value=rows, visible=True), self.article_rows(), self.summary(self._done(update, what))

    def delete(self, ids_text: str):
        """Delete handler: (ids box cleared, article list, status)."""
        ids = [i.strip() for i in re.split(r"[\n,]", ids_text or "") if i.strip()]
        if not ids:
            return gr.skip(), gr.skip(), self.summary("Give the id of an article to delete (click a row).")
        try:
            update = self.live.remove(ids)
        except UploadError as e:
            raise gr.Error(str(e)) from None
        except QAError as e:  # e.g. the last article deleted: nothing left to index
            log.warning("delete failed: %s", e)
            raise gr.Error(str(e).split("\n", 1)[0][:300]) from None
        done = [r for r in update.removed if r.status == "removed"]
        missing = [r.id for r in update.removed if r.status != "removed"]
        what = (f"Deleted {', '.join(r.id for r in done)} (kept in the corpus folder's {done[0].trash.split('/')[0]}/)"
                if done else "Nothing deleted") + (f"; not found: {', '.join(missing)}" if missing else "")
        return "", self.article_rows(), self.summary(self._done(update, what))

    def pick(self, evt: gr.SelectData) -> str:
        """A click on a row of the list puts its id into the delete box."""
        row = getattr(evt, "row_value", None)
        return str(row[0]) if row else gr.skip()


def articles_panel(live: LiveAssistant, app: gr.Blocks, private: dict, after: Optional[tuple] = None) -> None:
    """The Articles accordion (inside the current Blocks layout). ``after``: (function, outputs) run
    once an upload or a delete has finished (the chat refreshes its source filter's choices)."""
    h = ArticleHandlers(live)
    with gr.Accordion("Articles", open=False, elem_id="qa-articles-panel"):
        status = gr.Markdown(h.summary(), elem_id="qa-articles-status")
        if live.writable:
            lim = live.limits
            files = gr.File(file_count="multiple", file_types=sorted(SUPPORTED_EXTS), type="filepath", height=180,
                            label=f"Add articles: .txt .md .html .json .jsonl, up to {lim.max_files} files of "
                                  f"{lim.max_bytes / 2**20:g} MiB each", elem_id="qa-upload")
            results = gr.Dataframe(headers=RESULT_HEADERS, value=[], interactive=False, wrap=True, visible=False,
                                   column_widths=["26%", "14%", "42%", "18%"], label="Upload results",
                                   elem_id="qa-upload-results")
        listing = gr.Dataframe(headers=ARTICLE_HEADERS, value=h.article_rows(), interactive=False, wrap=True,
                               max_height=360, column_widths=["28%", "44%", "14%", "14%"], label="Indexed articles",
                               elem_id="qa-article-list")
        if live.writable:
            with gr.Row(equal_height=True):
                ids = gr.Textbox(show_label=False, placeholder="article id(s) to delete (click a row)", scale=4,
                                 elem_id="qa-delete-ids")
                delete = gr.Button("Delete", variant="stop", scale=1, min_width=100, elem_id="qa-delete")
            added = files.upload(h.upload, files, [files, results, listing, status], concurrency_limit=1, **private)
            listing.select(h.pick, None, ids, **private)
            deleted = delete.click(h.delete, ids, [ids, listing, status], concurrency_limit=1, **private)
            if after is not None:
                for event in (added, deleted):
                    event.then(after[0], None, after[1], **private)
        else:
            gr.Markdown("Adding and deleting articles is off: start the server with a login or `--allow-upload`.",
                        elem_id="qa-upload-off")
    app.load(lambda: (h.article_rows(), h.summary()), None, [listing, status], **private)
