"""`secfepas model`: import an ONNX model into a package, verify a package, or
write out the bundled demo package (a model directory for a first edge)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from secfepas_sdk.snni.he.flooding import CircuitPrivacy


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("model", help="import and verify model packages")
    sub = parser.add_subparsers(dest="model_command", metavar="ACTION")

    imp = sub.add_parser("import", help="compile an ONNX model into a package directory")
    imp.add_argument("onnx", help="MODEL.onnx (opset >= 13, batch 1, NCHW)")
    imp.add_argument("out_dir", help="package directory to write")
    imp.add_argument("--model-id", default=None, help="package id (default: file stem)")
    imp.add_argument(
        "--version",
        default="1.0.0",
        dest="model_version",
        metavar="VERSION",
        help="package version (semantic)",
    )
    imp.add_argument("--bits", type=int, default=37, help="ring bits l")
    imp.add_argument("--frac", type=int, default=12, help="fractional bits f")
    imp.add_argument(
        "--params",
        default=None,
        help="HE parameter set name (see docs/snni-he.md; default: the cheapest that meets "
        "the circuit-privacy budget)",
    )
    imp.add_argument(
        "--privacy-distance-log2",
        type=int,
        default=-40,
        metavar="D",
        help="circuit-privacy budget: total statistical distance 2^D about the weights "
        "(default: -40)",
    )
    imp.add_argument(
        "--privacy-inferences",
        type=int,
        default=10**8,
        metavar="N",
        help="circuit-privacy budget: over N inferences, all cameras together (default: 100000000)",
    )
    imp.add_argument(
        "--classes",
        nargs="+",
        default=["none", "little", "moderate", "extreme"],
        help="class names in output order",
    )
    con = imp.add_argument_group(
        "preprocessing contract (public, in the manifest; defaults from the ONNX input)"
    )
    con.add_argument(
        "--colour-order",
        metavar="ORDER",
        help="RGB, BGR or GRAY (default: RGB for 3 channels, GRAY for 1)",
    )
    con.add_argument(
        "--size",
        metavar="HxW",
        help="input height x width, e.g. 64x64 (default: the ONNX input's; "
        "required if it is dynamic)",
    )
    con.add_argument(
        "--mean",
        nargs="+",
        type=float,
        help="per-channel mean on pixels in [0, 1] (default: ImageNet's for RGB/BGR, 0 for GRAY)",
    )
    con.add_argument(
        "--std", nargs="+", type=float, help="per-channel std (default: ImageNet's, 1 for GRAY)"
    )
    con.add_argument(
        "--crop-margin",
        type=float,
        default=0.2,
        help="added on each side of the face box, as a fraction of its longer side (0.2)",
    )
    con.add_argument(
        "--no-square-crop",
        action="store_true",
        help="crop the grown face box as it is and stretch it (default: a crop with the "
        "input's aspect ratio, never stretched)",
    )
    con.add_argument(
        "--interpolation",
        default="area",
        help="area (default: area averaging when shrinking, bilinear when enlarging), "
        "linear, cubic or nearest",
    )
    imp.add_argument(
        "--description", default="", help="free text for the manifest (default: empty)"
    )
    imp.add_argument(
        "--no-reference", action="store_true", help="do not keep the float ONNX in private/"
    )
    imp.add_argument(
        "--ot-k",
        type=int,
        choices=(2, 4, 6, 8),
        default=None,
        help="SoftSpokenOT k for every non-linear op (default 6: 22 bits per OT; "
        "8 sends less and computes more, 4 the reverse)",
    )
    imp.add_argument(
        "--link-mbps",
        type=float,
        default=None,
        metavar="MBPS",
        help="price the HE tilings for cameras on a link of MBPS Mbit/s (default 100): "
        "the slower the link, the fewer uploads and the more replies; a large value "
        "prices the parties' compute almost alone",
    )
    imp.add_argument(
        "--no-pixel-bound",
        action="store_true",
        help="the input is not normalised pixels: no public input range, so no "
        "activation bounds (costlier comparisons) and no input range check",
    )
    imp.set_defaults(handler=_import)

    ins = sub.add_parser(
        "inspect",
        help="per-layer cost of a package: parameters, activations, ReLUs, HE and OT traffic",
    )
    ins.add_argument("package", help="package directory (the public part is enough)")
    ins.add_argument("--json", action="store_true", help="print the JSON report")
    ins.add_argument(
        "--no-probe",
        action="store_true",
        help="counts only: skip the short two-party probes that measure bytes and rounds",
    )
    ins.set_defaults(handler=_inspect)

    qua = sub.add_parser("quantize", help="write a copy of an ONNX model with FP16-rounded weights")
    qua.add_argument("onnx", help="MODEL.onnx")
    qua.add_argument("--fp16", action="store_true", required=True, help="round weights to FP16")
    qua.add_argument("--out", required=True, help="M16.onnx to write")
    qua.set_defaults(handler=_quantize)

    fid = sub.add_parser(
        "fidelity",
        help="compare FP32, FP16, the fixed-point simulation and secure inference on images",
    )
    fid.add_argument("model", help="a package directory (private part needed) or MODEL.onnx")
    fid.add_argument("--images", required=True, help="folder of images (whole image = input)")
    fid.add_argument(
        "--labels", help="CSV of file,label (class index or name): adds accuracy (default: none)"
    )
    fid.add_argument(
        "--secure", type=int, default=0, metavar="N", help="also run secure inference on N images"
    )
    fid.add_argument("--json", action="store_true", help="print the JSON report")
    fid.set_defaults(handler=_fidelity)

    ver = sub.add_parser("verify", help="check every hash and the plan/weights consistency")
    ver.add_argument("package", help="package directory")
    ver.add_argument("--public-only", action="store_true", help="camera side: skip the weights")
    ver.set_defaults(handler=_verify)

    from secfepas_sdk.cli import model_train

    model_train.register(sub)

    demo = sub.add_parser(
        "demo-package",
        help="write the bundled demo package (seeded weights, not clinically trained) to DIR",
        description="Copy the bundled demo model package, public and private parts, to DIR: "
        "put DIR inside an edge's --model-dir to serve model id demo-pain-cnn.",
    )
    demo.add_argument("dir", type=Path, help="package directory to create (must not exist)")
    demo.set_defaults(handler=_demo_package)
    parser.set_defaults(handler=lambda _a: parser.print_help() or 2)


def _import(args: argparse.Namespace) -> int:
    from secfepas_sdk.cli.progress import Progress
    from secfepas_sdk.models.importer import DEFAULT_OT_K, import_onnx
    from secfepas_sdk.snni.he.prices import DEFAULT_LINK_MBPS

    label = f"importing {args.onnx}"
    with Progress(label, enabled=True) as progress:
        progress.update("fold BN, quantise, compile the plan, write the package")
        manifest = import_onnx(
            args.onnx,
            args.out_dir,
            model_id=args.model_id or Path(args.onnx).stem,
            version=args.model_version,
            ring_bits=args.bits,
            frac_bits=args.frac,
            he_params=args.params,
            circuit_privacy=_budget(args),
            class_names=args.classes,
            mean=args.mean,
            std=args.std,
            colour_order=args.colour_order,
            size=None if args.size is None else parse_size(args.size),
            crop_margin=args.crop_margin,
            crop_square=not args.no_square_crop,
            interpolation=args.interpolation,
            description=args.description,
            keep_reference=not args.no_reference,
            pixel_bound=not args.no_pixel_bound,
            ot_k=None if args.ot_k is None else dict.fromkeys(DEFAULT_OT_K, args.ot_k),
            link_mbps=DEFAULT_LINK_MBPS if args.link_mbps is None else args.link_mbps,
        )
    print(json.dumps({"package": str(args.out_dir), "fingerprint": manifest.fingerprint}))
    return 0


def _budget(args: argparse.Namespace) -> CircuitPrivacy:
    from secfepas_sdk.errors import ConfigError
    from secfepas_sdk.snni.he import flooding

    try:
        return flooding.CircuitPrivacy(
            distance_log2=args.privacy_distance_log2, inferences=args.privacy_inferences
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _quantize(args: argparse.Namespace) -> int:
    from secfepas_sdk.models.fidelity import quantize_fp16

    count = quantize_fp16(args.onnx, args.out)
    print(json.dumps({"out": str(args.out), "fp16_tensors": count}))
    return 0


def _fidelity(args: argparse.Namespace) -> int:
    from secfepas_sdk.models.fidelity import fidelity_report

    report = fidelity_report(args.model, args.images, labels=args.labels, secure=args.secure)
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"model {report['model']}: {report['images']} images, {report['labelled']} labelled")
    for row in report["variants"]:
        acc = f", accuracy {row['accuracy']:.4f}" if "accuracy" in row else ""
        print(
            f"{row['variant']:<12} {row['images']:>5} images: top-1 agreement with FP32 "
            f"{row['top1_agreement_with_fp32']:.4f}{acc}, logit error max "
            f"{row['max_logit_error']:.4g} mean {row['mean_logit_error']:.4g}"
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from secfepas_sdk.models.inspect import inspect_package

    report = inspect_package(args.package, probe=not args.no_probe)
    if args.json:
        print(json.dumps(report))
        return 0
    mb = 1e6
    print(f"model {report['model']}")
    ring, he = report["ring"], report["he"]
    print(
        f"ring l={ring['bits']} f={ring['frac_bits']}; HE {he['params']} (N={he['poly_degree']}, "
        f"log q={sum(he['coeff_bits'])}, {he['security_bits']}-bit)"
    )
    cp = report["circuit_privacy"]
    print(
        f"circuit privacy: 2^{cp['distance_log2_per_inference']} per inference; budget "
        f"2^{cp['distance_log2']} over {cp['inferences']} inferences covers "
        f"{cp['inferences_covered']}" + ("" if cp["sized"] else " (plan not sized to it)")
    )
    c = report["preprocess"]
    print(
        f"input {c['channels']}x{c['height']}x{c['width']} {c['colour_order']}, mean {c['mean']} "
        f"std {c['std']}, crop margin {c['crop_margin']} "
        f"{'square' if c['crop_square'] else 'box'}, {c['interpolation']}"
    )
    print(
        f"{'layer':<34} {'op':<15} {'out shape':<16} {'params':>9} {'act MB':>7} "
        f"{'ReLUs':>9} {'cmp':>9} {'HE mul':>7} {'ct up/dn':>10} {'OTs':>10} {'MB up/dn':>13}"
    )
    probed = report["estimated"]
    for layer in report["layers"]:
        he_ct = f"{layer['ct_up']}/{layer['ct_down']}" if layer["he_products"] else ""
        traffic = (
            f"{layer['bytes_up'] / mb:>6.1f}/{layer['bytes_down'] / mb:<6.1f}" if probed else "-"
        )
        print(
            f"{layer['name'][-34:]:<34} {layer['kind']:<15} "
            f"{'x'.join(map(str, layer['out_shape'])):<16} {layer['params']:>9} "
            f"{layer['activation_bytes'] / mb:>7.2f} {layer['relus']:>9} "
            f"{layer['comparisons']:>9} {layer['he_products'] or '':>7} {he_ct:>10} "
            f"{(layer['ots'] or '') if probed else '-':>10} {traffic}"
        )
    t, s = report["per_inference"], report["setup"]
    counts = (
        f"per inference: {t['relus']} ReLUs, {t['comparisons']} comparisons, "
        f"{t['he_products']} HE products, {t['ct_up']}/{t['ct_down']} ciphertexts up/down"
    )
    if not probed:
        print(f"{counts}; OTs, bytes and rounds not estimated (--no-probe), nor the setup's")
        return 0
    print(
        f"{counts}, {t['ots']} OTs, {t['bytes_up'] / mb:.1f} MB up, "
        f"{t['bytes_down'] / mb:.1f} MB down, {t['rounds']} rounds; setup "
        f"{s['bytes_up'] / mb:.1f} MB up, {s['bytes_down'] / mb:.1f} MB down, {s['rounds']} rounds"
    )
    return 0


def parse_size(text: str) -> tuple[int, int]:
    """'64x64' or '64' -> (height, width)."""
    from secfepas_sdk.errors import ConfigError

    parts = text.lower().split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) not in (1, 2) or min(dims) < 1:
        raise ConfigError(f"--size {text!r}: expected HEIGHTxWIDTH, e.g. 64x64")
    return (dims[0], dims[-1])


def _demo_package(args: argparse.Namespace) -> int:
    import shutil

    from secfepas_sdk.errors import ConfigError
    from secfepas_sdk.models.bundled import demo_model_path
    from secfepas_sdk.models.package import load_private

    if args.dir.exists():
        raise ConfigError(f"{args.dir} already exists: give a new directory for the package")
    try:
        shutil.copytree(demo_model_path(), args.dir)
    except OSError as exc:
        raise ConfigError(f"cannot write {args.dir}: {exc.strerror or exc}") from None
    m = load_private(args.dir).public.manifest  # the copy is checked like any package
    print(
        f"wrote model package {m.model_id} {m.version} to {args.dir} (seeded weights, not "
        f"clinically trained); serve it with: secfepas edge serve --model-dir {args.dir.parent} ..."
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from secfepas_sdk.models.package import load_private, load_public

    if args.public_only:
        model = load_public(args.package)
        ops = len(model.plan.ops)
    else:
        private = load_private(args.package)
        model = private.public
        ops = len(model.plan.ops)
    m = model.manifest
    print(
        json.dumps(
            {
                "ok": True,
                "fingerprint": m.fingerprint,
                "input_shape": list(m.input_shape),
                "ring_bits": m.ring_bits,
                "frac_bits": m.frac_bits,
                "he_params": m.he_params,
                "preprocess": m.preprocess.model_dump(mode="json"),
                "ops": ops,
                "weights_checked": not args.public_only,
            }
        )
    )
    return 0
