"""3D-aware fine-tuning of 2D vision foundation models (FiT3D), literate, tested and fast

Modules:

- `fit3d.correspondence`: Do features of the same 3D point agree across views? Ground-truth correspondences from posed depth, nearest-neighbour matching by cosine similarity, recall at pixel thresholds, and the cosine between corresponding features.
- `fit3d.dataset_fixtures`: Tiny copies of ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC, KITTI and the synthetic benchmark, file for file in their official layouts, for tests and examples (no downloads).
- `fit3d.datasets`: ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC 2012, KITTI and our synthetic rooms, each read from the layout its official release (or FiT3D's evaluation) ships, into one kind of sample.
- `fit3d.features`: One small interface from a timm model (by name or built) to dense patch-feature maps `(B, C, h, w)`, batched extraction over a `Scene` with a cache on disk that knows what made it, and PCA pictures that compare models.
- `fit3d.probe`: Semantic segmentation and monocular depth from a linear head on dense features, with one protocol for every backbone: the head, optimiser, schedule, losses and metrics of DINOv2's linear evaluation, which FiT3D reuses.
- `fit3d.protocol`: The four feature sets of a results table (original, duplicated, fine-tuned, combined), the official augmentations and sliding-window inference of the segmentation and depth probes, the quick cached mode beside them, and the paper's numbers."""

__version__ = "0.1.0"
