"""torch.hub entries for the FCN zoo (fcn_ref.hub): one per released caffemodel.

    torch.hub.load(repo_dir, "fcn8s", weights="fcn8s-heavy-pascal.pth", source="local")
"""
from fcn_ref.hub import HUB_ENTRIES

dependencies = ["torch", "numpy", "google.protobuf", "h5py", "scipy", "PIL"]

globals().update(HUB_ENTRIES)
