"""`mmrag serve`: a small web app over an index: ask, watch the answer stream, see the sources.

`mmrag.serve.app.create_app(index)` builds the ASGI app (Starlette; `pip install 'mmrag[serve]'`);
`mmrag.serve.backend.Backend` holds the pipeline on one worker thread. The page is plain HTML and
JavaScript shipped in `static/` (no build step, nothing fetched from the internet).
"""

from __future__ import annotations
