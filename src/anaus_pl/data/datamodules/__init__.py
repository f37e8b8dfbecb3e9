"""LightningDataModules of the stages."""
