"""`secfepas certs`: create a site PKI, issue and revoke camera certificates."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "certs", help="create the site CA, edge and camera certificates (EC P-256)"
    )
    sub = parser.add_subparsers(dest="certs_command", metavar="SUBCOMMAND", required=True)
    init = sub.add_parser(
        "init", help="create a CA, an edge certificate and one camera certificate"
    )
    init.add_argument("dir", type=Path, help="directory to create (key files get mode 0600)")
    init.add_argument(
        "--edge-host",
        action="append",
        dest="edge_hosts",
        metavar="HOST",
        help="DNS name or IP the cameras use to reach the edge (repeatable; "
        "default: localhost, 127.0.0.1, ::1)",
    )
    init.add_argument("--camera", default="camera-1", help="first camera's identity (CN)")
    init.set_defaults(handler=_init)
    issue = sub.add_parser("issue-camera", help="sign a certificate for one more camera")
    issue.add_argument("dir", type=Path, help="directory made by `certs init`")
    issue.add_argument("name", help="the camera's identity (certificate CN and DNS SAN)")
    issue.set_defaults(handler=_issue)
    revoke = sub.add_parser(
        "revoke", help="add a camera to the site CRL (crl.pem; the edge's `crl` setting)"
    )
    revoke.add_argument("dir", type=Path, help="directory made by `certs init`")
    revoke.add_argument("name", help="the camera's identity (certificate CN)")
    revoke.set_defaults(handler=_revoke)


def _init(args: argparse.Namespace) -> int:
    from secfepas_sdk.certs import init_pki

    pki = init_pki(args.dir, edge_hosts=args.edge_hosts, camera=args.camera)
    cam = pki.camera(args.camera)
    print(f"CA:     {pki.ca_cert} (key {pki.ca_key}: keep it private, ideally offline)")
    print(f"edge:   {pki.edge_cert} {pki.edge_key}")
    print(f"camera: {cam.cert} {cam.key}")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from secfepas_sdk.certs import issue_camera

    files = issue_camera(args.dir, args.name)
    print(f"camera {files.name}: {files.cert} {files.key}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from secfepas_sdk.certs import revoke_camera

    crl = revoke_camera(args.dir, args.name)
    print(f"camera {args.name} revoked: {crl} (send the edge SIGHUP to reload it)")
    return 0
