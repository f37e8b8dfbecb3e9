"""One LightningDataModule per stage (``adapt``, ...)."""
