"""Adapters from mmrag to other ecosystems (installed as `mmrag.connectors`).

Each adapter lives in its own subpackage behind its own extra, so `import mmrag` never imports
a host framework.
"""
