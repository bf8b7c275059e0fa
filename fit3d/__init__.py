"""3D-aware fine-tuning of 2D vision foundation models (FiT3D), literate, tested and fast

Modules:

- `fit3d.correspondence`: Do features of the same 3D point agree across views? Ground-truth correspondences from posed depth, nearest- neighbour matching by cosine similarity, recall at pixel thresholds, and the cosine between corresponding features.
- `fit3d.dataset_fixtures`: Tiny copies of ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC, KITTI and the synthetic benchmark, file for file in their official layouts, for tests and examples (no downloads).
- `fit3d.datasets`: ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC 2012, KITTI and our synthetic rooms, each read from the layout its official release (or FiT3D's evaluation) ships, into one kind of sample.
- `fit3d.probe`: Semantic segmentation and monocular depth from a linear head on frozen (cached) dense features, with one protocol for every backbone: the head, optimiser, schedule, augmentation and metrics of DINOv2's linear evaluation, which FiT3D reuses."""

__version__ = "0.1.0"
