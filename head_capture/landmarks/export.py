"""
ONNX export of the landmark network, checked against torch before it is kept, and the way back.

The graph takes an RGB uint8 NHWC batch of any size and returns landmarks and log sigma in
crop pixels, visibility logits and mask logits, so a runtime needs nothing but onnxruntime.
Metadata in the file records the model config and the template it was trained for. The
exporter folds each batch norm into its convolution; reading a file back gives a network whose
batch norms are identities around those folded weights, so fine-tuning it must keep their
statistics frozen.
"""

import json
from pathlib import Path

from head_capture.files import write_bytes_atomic
from head_capture.landmarks.detector import MODEL_INPUT, OUTPUT_NAMES
from head_capture.landmarks.model import LandmarkNet, ModelConfig
import numpy as np
import onnx
import torch
from torch import nn

INPUT_NAME = MODEL_INPUT[0]
OPSET = 17
PARITY_TOLERANCE_PX = 0.1


def export_onnx(model, path, metadata=None):
    """Write ``model`` as ONNX (opset 17, dynamic batch) to ``path`` atomically."""
    model, path = model.eval(), Path(path)
    size = model.cfg.input_size
    example = torch.zeros((1, size, size, 3), dtype=torch.uint8)
    axes = {name: {0: 'batch'} for name in (INPUT_NAME, *OUTPUT_NAMES)}
    buffer_path = path.with_suffix('.tmp.onnx')
    torch.onnx.export(model, (example,), str(buffer_path), input_names=[INPUT_NAME],
                      output_names=list(OUTPUT_NAMES), dynamic_axes=axes, opset_version=OPSET,
                      dynamo=False)
    proto = onnx.load(str(buffer_path))
    buffer_path.unlink()
    entries = {'model_config': json.dumps(model.cfg.__dict__), **(metadata or {})}
    for key, value in entries.items():
        proto.metadata_props.add(key=key, value=str(value))
    onnx.checker.check_model(proto)
    write_bytes_atomic(path, proto.SerializeToString())
    return path


def model_config_of(onnx_path, proto=None):
    """Return the ``ModelConfig`` stored in an exported file's metadata (or its loaded proto)."""
    proto = proto or onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if 'model_config' not in props:
        raise ValueError(f'{onnx_path} is not a head_capture landmark model (no model_config)')
    return ModelConfig(**json.loads(props['model_config']))


def parity_error(model, onnx_path, images):
    """Return the largest landmark difference (pixels) between torch and onnxruntime."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(images))[0].numpy()
    got = session.run([OUTPUT_NAMES[0]], {INPUT_NAME: images})[0]
    return float(np.abs(got - expected).max())


def parity_images(size):
    """Noise and flat grey: torch and onnxruntime must agree on any input, not only heads."""
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    images[2] = 128
    return images


def export_checked(model, path, images, metadata=None):
    """Export, then refuse the file (and delete it) unless it matches torch within 0.1 px."""
    export_onnx(model, path, metadata)
    error = parity_error(model, path, images)
    if not error < PARITY_TOLERANCE_PX:
        Path(path).unlink()
        raise RuntimeError(f'ONNX export differs from torch by {error:.3f} px '
                           f'(limit {PARITY_TOLERANCE_PX} px); nothing kept')
    return error


def load_checkpoint_model(checkpoint_path):
    """Rebuild the network from a training checkpoint (weights only, no pickled code)."""
    state = torch.load(checkpoint_path, map_location='cpu', weights_only=True)
    model = LandmarkNet(ModelConfig(**state['model_config']))
    model.load_state_dict(state['model'])
    return model.eval()


def load_onnx_model(onnx_path):
    """
    Rebuild the network from an exported file, as the start of a fine-tuning run.

    Convolutions are matched in the order the forward pass runs them (the graph's node order)
    and must agree in shape; the rebuilt network is checked against onnxruntime.
    """
    from onnx import numpy_helper

    proto = onnx.load(str(onnx_path))
    model = LandmarkNet(model_config_of(onnx_path, proto)).eval()
    weights = {init.name: numpy_helper.to_array(init) for init in proto.graph.initializer}
    folded = [[weights.get(name) for name in node.input[1:]]
              for node in proto.graph.node if node.op_type == 'Conv']
    convolutions = _convolutions_in_run_order(model)
    if len(folded) != len(convolutions):
        raise ValueError(f'{onnx_path}: {len(folded)} convolutions, the network has '
                         f'{len(convolutions)}')
    state = model.state_dict()
    for (name, shape, norm), (weight, *bias) in zip(convolutions, folded):
        if weight is None or tuple(weight.shape) != shape or not bias or bias[0] is None:
            raise ValueError(f'{onnx_path}: no weight of shape {shape} and bias for {name}')
        state[f'{name}.weight'] = torch.from_numpy(weight.copy())
        bias = torch.from_numpy(bias[0].copy())
        if norm is None:
            state[f'{name}.bias'] = bias
            continue
        # An identity around the folded convolution: (x - 0) / sqrt((1 - eps) + eps) * 1 + bias.
        state[f'{norm}.weight'] = torch.ones_like(bias)
        state[f'{norm}.bias'] = bias
        state[f'{norm}.running_mean'] = torch.zeros_like(bias)
        state[f'{norm}.running_var'] = torch.full_like(bias, 1.0 - model.get_submodule(norm).eps)
    # Fully connected layers are not folded: the file keeps their parameters' names.
    linear = [f'{name}.{part}' for name, module in model.named_modules()
              if isinstance(module, nn.Linear) for part in ('weight', 'bias')]
    missing = [name for name in linear if name not in weights]
    if missing:
        raise ValueError(f'{onnx_path}: no {missing[0]} in the file')
    state.update({name: torch.from_numpy(weights[name].copy()) for name in linear})
    model.load_state_dict(state)
    error = parity_error(model, onnx_path, parity_images(model.cfg.input_size))
    if not error < PARITY_TOLERANCE_PX:
        raise ValueError(f'{onnx_path}: the rebuilt network differs from it by {error:.3f} px')
    return model


def _convolutions_in_run_order(model):
    """Return (name, weight shape, name of the batch norm after it or None) per convolution."""
    modules = dict(model.named_modules())
    order = []
    hooks = [module.register_forward_hook(lambda module, inputs, output: order.append(module))
             for module in modules.values() if isinstance(module, nn.Conv2d)]
    size = model.cfg.input_size
    with torch.no_grad():
        model(torch.zeros((1, size, size, 3), dtype=torch.uint8))
    for hook in hooks:
        hook.remove()
    names = {module: name for name, module in modules.items()}
    result = []
    for conv in order:
        name = names[conv]
        parent, _, index = name.rpartition('.')
        after = f'{parent}.{int(index) + 1}' if index.isdigit() else None
        norm = after if isinstance(modules.get(after), nn.BatchNorm2d) else None
        result.append((name, tuple(conv.weight.shape), norm))
    return result


def main(argv=None):
    """Export a training checkpoint: ``python -m head_capture.landmarks.export CKPT OUT``."""
    import argparse

    parser = argparse.ArgumentParser(description='export a landmark checkpoint to ONNX')
    parser.add_argument('checkpoint', type=Path, help='checkpoint.pt of a training run')
    parser.add_argument('out', type=Path, help='ONNX file to write')
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f'error: no checkpoint at {args.checkpoint}')
    model = load_checkpoint_model(args.checkpoint)
    error = export_checked(model, args.out, parity_images(model.cfg.input_size))
    print(f'{args.out}: onnxruntime matches torch within {error:.2e} px')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
