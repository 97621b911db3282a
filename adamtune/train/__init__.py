"""Training: one parameter set, or K of them together, from a task's initial weights.

- ``params``: one full set of Adam's hyperparameters (``AdamParams``) and Adam's defaults;
- ``schedules``: the lr schedule beside Adam (torch's own schedulers);
- ``engine``: one trial with ``torch.optim.Adam``, epoch by epoch (``train_trial``);
- ``batched``, ``stacked_adam``, ``stacked_mlp``: K trials as one vectorised model
  (``train_batch``), each row ending where it would alone;
- ``sizing``: how many trials train together and on how many CPU threads;
- ``lr_find``: the LR range test and its suggestions.

May import ``config`` and ``task``; nothing after it in the flow (search, insight, cli).
"""
