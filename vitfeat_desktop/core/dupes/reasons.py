"""Why a pair is one capture, or another shot of one scene, in a photographer's words (the review's Why column).

Built from the geometric evidence of ``verify.py`` (:class:`PairCheck`); read-only, nothing is measured here.
"""

from __future__ import annotations

import numpy as np

from vitfeat_desktop.core.dupes.align import frame_shares
from vitfeat_desktop.core.dupes.verify import PairCheck

TRANSFORM_NAMES = ("", "rotated 90°", "rotated 180°", "rotated 270°", "mirrored", "mirrored and rotated 90°",
                   "mirrored and rotated 180°", "mirrored and rotated 270°")


def same_capture_reason(check: PairCheck, keeper_is_a: bool = True) -> str:
    """A geometric copy's reason in a photographer's words: how the copy maps onto the keeper and how many of
    the matched points agree, e.g. "same capture: maps onto the keeper by scale 0.33 + crop, 412 of 430 matched
    points agree within 1.2 px". ``check`` maps B onto A; ``keeper_is_a`` says which one is kept."""
    al = check.alignment
    assert al is not None, "only an aligned pair is one capture"
    w_a, h_a = check.size_a
    w_b, h_b = check.size_b
    if keeper_is_a:
        m, (kw, kh), (cw, ch), scale, tol = al.matrix, (w_a, h_a), (w_b, h_b), al.scale, al.tolerance_px
    else:
        m, (kw, kh), (cw, ch) = al.inverse(), (w_b, h_b), (w_a, h_a)
        scale = 1.0 / al.scale if al.scale else 0.0
        tol = al.tolerance_px / al.scale if al.scale else 0.0
    how: list[str] = []
    if abs(scale - 1.0) > 0.02:
        how.append(f"scale {scale:.2f}")
    rotation = float(np.degrees(np.arctan2(m[1, 0], m[0, 0])))
    if al.mirrored:
        how.append("mirrored")
        rotation = float(np.degrees(np.arctan2(-m[1, 0], -m[0, 0])))
    quarter = round(rotation / 90.0) % 4
    if quarter:
        how.append(f"turned {quarter * 90}°")
    tilt = rotation - 90.0 * round(rotation / 90.0)
    if abs(tilt) >= 0.5:
        how.append(f"straightened {abs(tilt):.1f}°")
    shares = frame_shares(m, (kw, kh), (cw, ch))
    if shares is not None:
        covers, inside = shares  # the keeper's frame the copy covers; the copy's frame inside the keeper's
        if covers < 0.95:  # a crop of the keeper, or the keeper has a border the copy lacks
            how.append(f"crop (covers {covers:.0%} of the keeper's frame)")
        if inside < 1 / 1.05:
            how.append("border or added canvas")
    mapping = f"maps onto the keeper by {' + '.join(how)}" if how else "same framing"
    # Short enough for the review list's row (four lines of the Why column at 1280 px wide).
    text = (f"same capture: {mapping}, {al.inliers} of {al.matches} matched points agree within {tol:.1f} px; "
            f"pixels match after a tone fit (r {check.local:.2f})")
    if check.photo is not None and check.photo.changed_local >= 0.1:
        # An overlay and a subject that moved on a fixed frame (a tripod burst) both change a few areas; the
        # measured copies reach 0.1-0.35 of such areas (overlays, borders), so this is said, not decided.
        text += f"; {check.photo.changed_local:.0%} of the picture differs (an overlay, or something that moved)"
    return text


def what_differs(check: PairCheck | None) -> str:
    """One pair's difference in words: the camera moved (a homography explains the matches much better than a
    similarity, or few of them fit one), the subject moved (the frame fits, some blocks do not), or the light or
    exposure changed (the frame and its structure fit, the tones do not follow one curve)."""
    al = check.alignment if check is not None else None
    photo = check.photo if check is not None else None
    if al is None:
        return "close in content and layout (embedding and perceptual hash)"
    if al.homography_inliers >= 1.25 * al.inliers or al.inlier_ratio < 0.6 or photo is None:
        return "viewpoint moved"
    if photo.local >= 0.85 and photo.changed_local < 0.1:
        return "light or exposure differs"
    if photo.changed_local >= 0.05:
        return "subject moved"
    return "slightly different moment or viewpoint"
