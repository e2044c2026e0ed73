"""One module per dashboard page: PATH, TITLE, layout(filters, ctx) and register(app, ctx)."""
