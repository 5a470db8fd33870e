"""
ONNX export of the landmark network, checked against torch before it is kept.

The graph takes an RGB uint8 NHWC batch of any size and returns landmarks and log sigma in
crop pixels, visibility logits and mask logits, so a runtime needs nothing but onnxruntime.
Metadata in the file records the model config and the template it was trained for.
"""

import json
from pathlib import Path

from head_capture.landmarks.model import LandmarkNet, ModelConfig
from head_capture.session import write_bytes_atomic
import numpy as np
import onnx
import torch

INPUT_NAME = 'image'
OUTPUT_NAMES = ('landmarks', 'log_sigma', 'visibility_logit', 'mask_logit')
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


def model_config_of(onnx_path):
    """Return the ``ModelConfig`` stored in an exported file's metadata."""
    proto = onnx.load(str(onnx_path), load_external_data=False)
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
    size = model.cfg.input_size
    # Parity on noise and on flat grey: any input must agree, not only heads.
    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    images[2] = 128
    error = export_checked(model, args.out, images)
    print(f'{args.out}: onnxruntime matches torch within {error:.2e} px')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
