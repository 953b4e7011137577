"""Data: skeletons, cameras, mocap readers, virtual capture, loaders and the DataModule."""
