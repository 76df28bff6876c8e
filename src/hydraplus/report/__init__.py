"""Reports: Markdown tables and figures."""
