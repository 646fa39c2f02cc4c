"""HTTP layer: FastAPI app factory (`api.main.create_app`), routes, schemas and the chat page. Wraps `qa` only."""
