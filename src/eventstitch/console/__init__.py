"""The web console: server-rendered pages at `/` for looking at sources, events and refusals."""
