"""Landmark accuracy the way the paper's pose estimation needs it: by viewing direction."""

from head_capture.geometry import view_angles
import numpy as np

AZIMUTH_BIN_DEG = 30
ELEVATION_BANDS_DEG = (-90, -30, 0, 30, 90)


def binned_view_angles(rotations, translations):
    """Return ``view_angles`` with -180..-165 folded onto 180..195, the back bin's range."""
    azimuth, elevation = view_angles(rotations, translations)
    return np.where(azimuth < -165, azimuth + 360, azimuth), elevation


def in_window(landmarks, size):
    """
    Mark landmarks (B, N, 2) that project within one image side of a size² view, (B, N).

    A neck point next to the camera plane projects thousands of pixels away; such points say
    nothing about accuracy and would swamp both the loss and the head box.
    """
    return (np.isfinite(landmarks).all(-1)
            & (np.abs(landmarks - (size - 1) / 2.0) < 1.5 * size).all(-1))


def head_in_view(landmarks, size, share=0.5):
    """Mark views (B,) that show at least ``share`` of the head landmarks inside the image."""
    inside = ((landmarks > -0.5) & (landmarks < size - 0.5)).all(-1)
    return inside.mean(1) >= share


def head_diagonal(landmarks, valid):
    """Diagonal (pixels) of the box around a view's valid true landmarks, (B, N, 2) -> (B,)."""
    low = np.where(valid[..., None], landmarks, np.inf).min(1)
    high = np.where(valid[..., None], landmarks, -np.inf).max(1)
    return np.linalg.norm(high - low, axis=1)


def normalised_errors(predicted, truth, size):
    """Per-landmark error over the head-box diagonal, (B, N); NaN outside the window."""
    valid = in_window(truth, size)
    distance = np.linalg.norm(predicted - truth, axis=-1)
    diagonal = np.maximum(head_diagonal(truth, valid), 1e-6)[:, None]
    return np.where(valid, distance / diagonal, np.nan)


def by_bins(values, keys, edges):
    """Mean of ``values`` (B,) for keys falling in each [edges[i], edges[i+1]) bin."""
    which = np.digitize(keys, edges) - 1
    return [{'from': float(edges[i]), 'to': float(edges[i + 1]),
             'count': int((which == i).sum()),
             'mean': float(values[which == i].mean()) if (which == i).any() else None,
             'median': float(np.median(values[which == i])) if (which == i).any() else None}
            for i in range(len(edges) - 1)]


def azimuth_edges():
    """Edges of 30° azimuth bins, one centred on the front (-15..15), the back one 165..195."""
    return np.arange(-165, 196, AZIMUTH_BIN_DEG)


def accuracy_report(predicted, truth, rotations, translations, size):
    """Normalised error (mean, median, share below 5 %) overall, by azimuth and elevation."""
    per_view = np.nanmean(normalised_errors(predicted, truth, size), axis=1)
    azimuth, elevation = binned_view_angles(rotations, translations)
    return {'nme': float(per_view.mean()), 'median_nme': float(np.median(per_view)),
            'share_below_5_percent': float((per_view < 0.05).mean()), 'views': int(len(per_view)),
            'by_azimuth': by_bins(per_view, azimuth, azimuth_edges()),
            'by_elevation': by_bins(per_view, elevation, np.array(ELEVATION_BANDS_DEG))}


def sigma_error_correlation(sigma, errors):
    """Spearman rank correlation of predicted sigma and actual error over all landmarks."""
    ranks = [np.argsort(np.argsort(np.ravel(values))).astype(np.float64)
             for values in (sigma, errors)]
    return float(np.corrcoef(*ranks)[0, 1])
