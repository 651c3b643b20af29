"""Signed and authenticated asset access against local servers that refuse what a provider refuses.

Planetary Computer: the assets of cloned real items sit in a local "blob store" that GDAL reaches as its HTTP proxy,
readable only with an unexpired SAS token of the local token endpoint the planetary-computer SDK is pointed at
(PC_SDK_SAS_URL). A bearer-token server stands in for NASA Earthdata-style HTTPS. Secrets must never show in logs,
runs.json or the published catalog.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from asset_servers import BLOB_HOST, CONTAINER, BearerStore, SasStore, running
from real_items import CUT, HISTORY, PROVIDERS, SIZE, UNTIL, Provider, clone_series, crs_of
from test_faults import write_catalog

from catalog.store import CatalogLayout, read_index
from scheduler import loading
from server.cli import main

pytestmark = pytest.mark.slow  # whole fits through the CLI

planetary_computer = pytest.importorskip("planetary_computer")
from planetary_computer.settings import Settings  # noqa: E402

PC = next(p for p in PROVIDERS if p.name == "planetary-computer")
SUBSCRIPTION_KEY = "pc-subscription-9f1c2e"
BEARER = "earthdata-token-77ab31"


def _series(provider: Provider, folder: Path, href: str) -> list[pystac.Item]:
    """The provider's cloned series, its read assets at `href` + file name."""
    assets = folder / "assets"
    assets.mkdir(parents=True)
    _, items = clone_series(provider, assets)
    for item in items:
        for asset in item["assets"].values():
            if asset["href"].startswith("file://"):
                asset["href"] = href + asset["href"].rsplit("/", 1)[-1]
    return [pystac.Item.from_dict(item) for item in items]


def _config(folder: Path, provider: Provider, items: list[pystac.Item], source: str) -> Path:
    """A deployment of the cloned tile reading a static catalog of `items`."""
    catalog = write_catalog(folder / "catalog", items, items[0].collection_id)
    real = provider.raw()
    transform = real["assets"][provider.nir].get("proj:transform") or real["properties"]["proj:transform"]
    x0, y0, res = transform[2], transform[5], provider.resolution
    config = folder / "nrt-alerts.toml"
    config.write_text(
        f'[area]\ncrs = "{crs_of(real)}"\nresolution = {res:g}\n'
        f"bounds = [{x0}, {y0 - SIZE * res}, {x0 + SIZE * res}, {y0}]\ntile_size = {SIZE}\n"
        f'[source]\npreset = "{provider.preset}"\nkind = "static"\ncatalog = "{catalog}"\nmax_cloud_cover = 100\n'
        f"retries = 2\nbackoff_seconds = 0.1\n{source}"
        f'[monitor]\nalgorithm = "iqr"\nharmonic_order = 1\nsensitivity = 5\n'
        f"[history]\nstart = {HISTORY[0]}\nend = {HISTORY[1]}\n"
        f'[compute]\nexecutor = "serial"\nthreads = 1\n'
        f'[output]\ndir = "{folder / "output"}"\n'
    )
    return config


def _published_text(config: Path) -> str:
    """Every text file the run wrote: runs.json, state, the catalog's JSON."""
    out = config.parent / "output"
    return "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.suffix in (".json", ".txt", ".log"))


@pytest.fixture
def sas_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SasStore, list[pystac.Item]]]:
    """PC's cloned items on the local blob store; the SDK and GDAL pointed at it."""
    items = _series(PC, tmp_path, f"http://{BLOB_HOST}/{CONTAINER}/")
    # A token is used 1 s, then refused 5 s after its issue; 40 ms a request make the fit outlast several tokens.
    store = SasStore(tmp_path / "assets", life=5.0, renew=1.0, subscription_key=SUBSCRIPTION_KEY)
    store.delay = 0.04
    with running(store):
        monkeypatch.setenv("PC_SDK_SAS_URL", f"{store.url}/token")
        monkeypatch.setenv("GDAL_HTTP_PROXY", store.url.removeprefix("http://"))
        Settings.get.cache_clear()  # the SDK reads its settings once per process
        # Reads of 4 dates (12 files, about 1.5 s): each is signed with a token that has 4 s left.
        monkeypatch.setattr(loading, "DATES_PER_READ", 4)
        yield store, items
    Settings.get.cache_clear()


def test_a_fit_longer_than_a_tokens_life_renews_it_and_succeeds(
    sas_store: tuple[SasStore, list[pystac.Item]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    store, items = sas_store
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", SUBSCRIPTION_KEY)
    config = _config(tmp_path, PC, items, "")
    assert main(["--log-level", "info", "fit", "-c", str(config)]) == 0
    assert main(["--log-level", "info", "update", "-c", str(config), "--until", f"{UNTIL}"]) == 0
    first_expiry = store.issued[0][1]
    assert store.last_read > first_expiry  # the run went on after its first token was refused by the store
    assert len(store.used) >= 2  # ... with renewed tokens
    layout = CatalogLayout(tmp_path / "output" / "stac")
    with rasterio.open(layout.collection_dir / read_index(layout).latest.mosaics["status"]) as src:
        status = src.read(1)
    assert np.isin(status[CUT], (3, 6)).all() and (status == 0).sum() == status.size - status[CUT].size
    logs = "".join(capfd.readouterr())
    for secret in (SUBSCRIPTION_KEY, *(token.split("sig=")[1] for token, _ in store.issued)):
        assert secret not in logs and secret not in _published_text(config)


def test_the_store_refuses_unsigned_and_expired_requests(sas_store: tuple[SasStore, list[pystac.Item]]) -> None:
    store, _ = sas_store
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": store.url}))
    url = f"http://{BLOB_HOST}/{CONTAINER}/00_B8A.tif"
    expired = store.sign(dt.datetime.now(dt.UTC).timestamp() - 1)
    for query in ("", f"?{expired}"):
        with pytest.raises(urllib.error.HTTPError) as info:
            opener.open(url + query, timeout=10)
        assert info.value.code == 403
    valid = store.sign(dt.datetime.now(dt.UTC).timestamp() + 30)
    with opener.open(f"{url}?{valid}", timeout=10) as answer:
        assert answer.read(4) == b"II*\x00"  # a GeoTIFF


def test_a_wrong_subscription_key_is_one_line_naming_planetary_computer(
    sas_store: tuple[SasStore, list[pystac.Item]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    _, items = sas_store
    monkeypatch.setenv("PC_SDK_SUBSCRIPTION_KEY", "not-the-key-4c1d")
    config = _config(tmp_path, PC, items, "")
    _assert_refused(config, capfd, "Planetary Computer: no SAS token to read item", "not-the-key-4c1d")


def _assert_refused(config: Path, capfd: pytest.CaptureFixture, message: str, secret: str) -> None:
    """check-source exits 3 with one line, a fit exits 1 with one error line per tile; both say `message`."""
    assert main(["check-source", "-c", str(config)]) == 3
    err = capfd.readouterr().err
    [line] = [line for line in err.splitlines() if line.startswith("nrt-alerts: error:")]
    assert message in line, line
    assert main(["fit", "-c", str(config)]) == 1
    err += capfd.readouterr().err
    [line] = [line for line in err.splitlines() if " ERROR " in line]
    assert message in line, line
    assert "Traceback" not in err and secret not in err
    assert secret not in _published_text(config)


# -- a bearer token (NASA Earthdata's HTTPS, CDSE's alternate hrefs) ------------------------------------------------


@pytest.fixture
def bearer_store(tmp_path: Path) -> Iterator[tuple[BearerStore, list[pystac.Item]]]:
    """USGS's cloned items behind a server that wants `Authorization: Bearer BEARER`."""
    folder = tmp_path / "series"
    store = BearerStore(folder / "assets", BEARER)
    with running(store):
        items = _series(PROVIDERS[1], folder, f"{store.url}/files/")
        yield store, items


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        (BEARER, None),
        (None, "USGS: no bearer token: set BEARER_TOKEN in the environment or in source.credentials_file"),
        ("expired-token-0000", "USGS: the bearer token was refused (BEARER_TOKEN) reading item"),
    ],
    ids=["right", "missing", "wrong"],
)
def test_a_bearer_token_from_the_credentials_file(
    bearer_store: tuple[BearerStore, list[pystac.Item]],
    tmp_path: Path,
    capfd: pytest.CaptureFixture,
    secret: str | None,
    message: str | None,
) -> None:
    store, items = bearer_store
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"BEARER_TOKEN={secret}\n" if secret else "# none\n")
    config = _config(tmp_path, PROVIDERS[1], items, f'auth = "bearer"\ncredentials_file = "{secrets}"\n')
    if message is not None:
        _assert_refused(config, capfd, message, secret or BEARER)
        return
    assert main(["fit", "-c", str(config)]) == 0
    assert store.served > 100 and store.refused == 0
    assert BEARER not in "".join(capfd.readouterr()) and BEARER not in _published_text(config)


# -- S3 keys (CDSE's s3://eodata/...) against moto's S3, which checks signatures once its IAM auth is on -------------

CDSE = next(p for p in PROVIDERS if p.name == "cdse")


S3_CASES = ("environment", "credentials_file", "missing", "wrong")


def _with_case(item: dict, case: str) -> dict:
    """The item dict with `{case}` in its hrefs filled in."""
    for asset in item["assets"].values():
        asset["href"] = asset["href"].replace("%7Bcase%7D", case).replace("{case}", case)
    return item


@pytest.fixture(scope="module")
def s3_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, str], dict[str, list[pystac.Item]]]]:
    """CDSE's cloned JPEG 2000 items in bucket eodata of a local moto S3: its endpoint, a user's keys, and one copy
    of the items per test case (GDAL caches what a path read: another credential must read other paths)."""
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    from moto import settings as moto_settings

    folder = tmp_path_factory.mktemp("cdse-s3")
    prefix = "s3://eodata/Sentinel-2/MSI/L2A/{case}/"
    items = _series(CDSE, folder, prefix)
    copies = {case: [pystac.Item.from_dict(_with_case(item.to_dict(), case)) for item in items] for case in S3_CASES}
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as patch:
        try:
            endpoint = "http://{}:{}".format(*server.get_host_and_port())
            admin = {"aws_access_key_id": "admin", "aws_secret_access_key": "admin", "region_name": "us-east-1"}
            iam = boto3.client("iam", endpoint_url=endpoint, **admin)
            iam.create_user(UserName="cdse-reader")
            rule = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
            policy = json.dumps({"Version": "2012-10-17", "Statement": [rule]})
            iam.put_user_policy(UserName="cdse-reader", PolicyName="read", PolicyDocument=policy)
            key = iam.create_access_key(UserName="cdse-reader")["AccessKey"]
            s3 = boto3.client("s3", endpoint_url=endpoint, **admin)
            s3.create_bucket(Bucket="eodata")
            for case in S3_CASES:
                for path in (folder / "assets").iterdir():
                    name = f"{prefix.removeprefix('s3://eodata/').format(case=case)}{path.name}"
                    s3.upload_file(str(path), "eodata", name)
            # From here on every request must be signed by a known key (moto's IAM authentication).
            patch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
            keys = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
            yield endpoint, keys, copies
        finally:
            server.stop()


@pytest.mark.parametrize("where", S3_CASES)
def test_cdse_s3_keys(
    s3_store: tuple[str, dict[str, str], dict[str, list[pystac.Item]]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
    where: str,
) -> None:
    endpoint, keys, copies = s3_store
    items = copies[where]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    source = f'auth = "s3"\ns3_endpoint = "{endpoint}"\n'
    secret = keys["AWS_SECRET_ACCESS_KEY"]
    if where == "environment":
        for name, value in keys.items():
            monkeypatch.setenv(name, value)
    elif where == "credentials_file":
        secrets = tmp_path / "cdse-s3.env"
        secrets.write_text("".join(f"{name}={value}\n" for name, value in keys.items()))
        source += f'credentials_file = "{secrets}"\n'
    elif where == "wrong":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AWS_ACCESS_KEY_ID"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret := "wrong" + secret[5:])
    config = _config(tmp_path, CDSE, items, source)
    name = "Copernicus Data Space Ecosystem (CDSE)"
    if where == "missing":
        message = f"{name}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        _assert_refused(config, capfd, message, secret)
        return
    if where == "wrong":
        _assert_refused(config, capfd, f"{name}: the S3 credentials were refused", secret)
        return
    assert main(["fit", "-c", str(config)]) == 0
    assert main(["update", "-c", str(config), "--until", f"{UNTIL}"]) == 0
    layout = CatalogLayout(tmp_path / "output" / "stac")
    with rasterio.open(layout.collection_dir / read_index(layout).latest.mosaics["status"]) as src:
        status = src.read(1)
    assert np.isin(status[CUT], (3, 6)).all()
    assert secret not in "".join(capfd.readouterr()) and secret not in _published_text(config)


def test_cdse_alternate_https_hrefs_with_a_bearer_token(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    folder = tmp_path / "series"
    store = BearerStore(folder / "assets", BEARER)
    with running(store):
        items = _series(CDSE, folder, "s3://eodata/Sentinel-2/MSI/L2A/2021/")  # not reachable: the S3 copies
        for item in items:
            for asset in item.assets.values():
                if asset.href.startswith("s3://"):
                    name = asset.href.rsplit("/", 1)[-1]
                    asset.extra_fields["alternate"] = {"https": {"href": f"{store.url}/odata/{name}"}}
        secrets = tmp_path / "secrets.env"
        secrets.write_text(f"BEARER_TOKEN={BEARER}\n")
        source = f'auth = "bearer"\nasset_href = "https"\ncredentials_file = "{secrets}"\n'
        config = _config(tmp_path, CDSE, items, source)
        assert main(["fit", "-c", str(config)]) == 0
    assert store.served > 100 and store.refused == 0
    assert BEARER not in "".join(capfd.readouterr()) and BEARER not in _published_text(config)


def test_secrets_and_url_queries_are_redacted_from_messages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from scheduler.auth import gdal_options, redacted
    from scheduler.config import SourceConfig
    from scheduler.retry import cause_of

    monkeypatch.setenv("BEARER_TOKEN", "tok-5521")
    src = SourceConfig(kind="static", catalog=tmp_path / "catalog.json", collection="c", auth="bearer")
    assert gdal_options(src) == {"GDAL_HTTP_HEADERS": "Authorization: Bearer tok-5521"}
    text = "HTTP 403 on http://a.blob.core.windows.net/c/B04.tif?se=2026&sig=abc with tok-5521"
    assert redacted(text) == "HTTP 403 on http://a.blob.core.windows.net/c/B04.tif?<redacted> with <redacted>"
    assert cause_of(OSError(text)) == redacted(text)
