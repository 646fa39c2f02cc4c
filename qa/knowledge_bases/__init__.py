"""Knowledge bases: named collections of documents, each with its own index, served side by side.

- `registry`: the knowledge bases on disk (names, `kb.json`, crash-safe create and delete by rename).
- `manager`: their services, loaded on first use and unloaded past a memory budget; one search over several.
- `access`: API keys stored hashed, each reading or writing only the knowledge bases it names.
"""
