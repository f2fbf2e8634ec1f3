"""The ToyWorld experiment: does trial-and-execution generalise to unseen tools better than direct or
self-correcting execution? (docs/toyworld.md)

This package sits above ``data/``, ``synth/`` and ``eval/`` and uses them; a user of the ``toyworld`` data source
needs only the environment kind (``envs/toyworld.py``), the scorer (``reward/scorers/toyworld.py``) and the dataset
adapter (``data/toyworld.py``).

* :mod:`.world`: the world generator (catalogues of tools with stale documentation, tasks by level);
* :mod:`.teachers`: the synthesis teachers of the ``trial`` and ``selfcorrect`` SFT flavours;
* :mod:`.generate`: ``python -m verl_toolmaster.toyworld.generate --out DIR`` (world, RL rows, SFT flavours);
* :mod:`.base`: ``python -m verl_toolmaster.toyworld.base`` (the tiny model's protocol-neutral pretraining);
* :mod:`.report`: ``python -m verl_toolmaster.toyworld.report OUT`` (the experiment's report).

``bash recipes/cpu/run_toyworld.sh OUT`` runs the whole experiment.
"""
