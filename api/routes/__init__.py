"""One module per resource, each with `router = APIRouter(...)`."""
