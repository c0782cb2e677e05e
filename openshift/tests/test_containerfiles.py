"""broker/Containerfile and worker/Containerfile: multi-stage, non-root, right binaries."""

from __future__ import annotations

import re

import pytest

import support

IMAGES = {
    # Containerfile: (crate directory, binary, entrypoint, cmd)
    "broker/Containerfile": ("broker", "baton", ["baton"], ["serve"]),
    "worker/Containerfile": ("worker", "baton-example-worker", ["baton-example-worker"], None),
}


@pytest.fixture(scope="module", params=sorted(IMAGES))
def image(request):
    path = support.REPO / request.param
    return request.param, support.parse_containerfile(path), IMAGES[request.param]


def test_multi_stage_with_short_base_images(image):
    _, stages, _ = image
    assert len(stages) >= 2
    assert stages[0].image == "rust:1.95-slim-bookworm" and stages[0].name
    assert stages[-1].image == "debian:bookworm-slim"
    for stage in stages:
        assert not support.image_has_registry_host(stage.image), stage.image


def test_builder_builds_the_binary_of_the_crate(image):
    _, stages, (crate, binary, _, _) = image
    package, bins = support.cargo_package(crate)
    assert binary in bins, f"{binary} is not a [[bin]] of {crate}/Cargo.toml"
    runs = " ".join(i.args for i in stages[0].all("RUN"))
    command = f"SQLX_OFFLINE=true cargo build --release --locked -p {package} --bin {binary}"
    assert command in re.sub(r"\s+", " ", runs)
    copies = [i.args for i in stages[0].all("COPY")]
    assert ". ." in copies, "the whole workspace is the build context"


def test_runtime_stage(image):
    _, stages, (_, binary, entrypoint, cmd) = image
    final = stages[-1]
    builder = stages[0].name
    copies = [i.args for i in final.all("COPY")]
    assert any(
        c.startswith(f"--from={builder} ") and c.endswith(f" /usr/local/bin/{binary}") for c in copies
    ), copies
    runs = " ".join(i.args for i in final.all("RUN"))
    assert "ca-certificates" in runs
    assert re.search(r"chgrp -R 0 ", runs) and re.search(r"chmod -R g=u ", runs)
    (user,) = final.all("USER")[-1:]
    assert re.fullmatch(r"\d+(:\d+)?", user.args), "numeric USER"
    assert int(user.args.split(":")[0]) != 0
    (last_entrypoint,) = final.all("ENTRYPOINT")[-1:]
    assert support.exec_form(last_entrypoint.args) == entrypoint
    if cmd is not None:
        assert support.exec_form(final.all("CMD")[-1].args) == cmd


def test_expose_matches_listen_port():
    stages = support.parse_containerfile(support.REPO / "broker/Containerfile")
    exposed = [p for i in stages[-1].all("EXPOSE") for p in i.args.split()]
    assert exposed == [str(support.listen_port())] == ["8080"]


def test_user_comes_after_root_steps(image):
    _, stages, _ = image
    final = stages[-1].instructions
    user_at = max(index for index, i in enumerate(final) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in final[user_at:]), "RUN after USER would not be root"


@pytest.mark.parametrize("path,component", [("broker/Containerfile", "broker"), ("worker/Containerfile", "worker")])
def test_env_exists_in_code(path, component):
    stages = support.parse_containerfile(support.REPO / path)
    names = {n for i in stages[-1].all("ENV") for n in support.env_names(i)}
    assert names - support.known_env(component) == set()


def test_ignore_files():
    container = (support.REPO / ".containerignore").read_text(encoding="utf-8")
    docker = (support.REPO / ".dockerignore").read_text(encoding="utf-8")
    assert container == docker
    assert "target" in [line.strip().rstrip("/") for line in container.splitlines()]


def test_parser_reads_continuations(tmp_path):
    path = tmp_path / "Containerfile"
    path.write_text("FROM a AS b\nRUN one \\\n  # comment\n  two\nFROM c\nUSER 5\n")
    stages = support.parse_containerfile(path)
    assert [s.image for s in stages] == ["a", "c"]
    assert stages[0].all("RUN")[0].args == "one two"


def test_sqlx_offline_data_present():
    """SQLX_OFFLINE=true needs the prepared query data (.sqlx/) in the build context."""
    if not (support.REPO / ".sqlx").is_dir():
        import warnings

        warnings.warn(
            ".sqlx/ is missing: image builds fail until `cargo sqlx prepare --workspace` "
            "output is committed",
            stacklevel=1,
        )
