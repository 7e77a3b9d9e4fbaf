"""Evidence for head-finding scores: ROC AUC with its exact random-ranking null and bootstrap
interval (``auc``), the trivial baselines every score is reported beside (``baselines``) and the
claims rule (``claims``). docs/methods.md, "Evidence"."""
