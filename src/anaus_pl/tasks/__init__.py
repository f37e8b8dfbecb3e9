"""LightningModules that wire models, losses and metrics together, one per stage."""
