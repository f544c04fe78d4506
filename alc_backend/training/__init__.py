"""Training, inference and checkpoints of the DeepLabV3+ segmentation model.

Modules: ``device`` (CPU/CUDA choice), ``model`` (ModelConfig, build_model), ``transforms``
and ``augment`` (image preparation), ``schedule`` (poly learning rate), ``trainer``
(train_model), ``inference`` (probabilities and decoder features), ``checkpoint``
(save/load), ``error_decoder`` (the error-mask decoder of PLAR).
"""
