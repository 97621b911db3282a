"""The config: the YAML file a study is described by, read and checked before anything runs.

- ``schema``: the config's keys, their defaults and checks (pydantic), and ``load_config``;
- ``space``: ``search.space``, the ranges and choices of Adam's parameters;
- ``yamlfile``: YAML reading with line numbers for every key;
- ``messages``: a validation error as one line naming the file, line and key path;
- ``storage_url``: storage URLs (the default, ``$ADAMTUNE_STORAGE``, checks, hidden passwords).

First in the flow: imports nothing from adamtune but ``errors``.
"""
