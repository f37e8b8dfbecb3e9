"""One LightningDataModule per stage."""
