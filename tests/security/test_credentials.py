"""The Label Studio API key goes to LABEL_STUDIO_URL's exact origin only, with real listeners on loopback."""

from __future__ import annotations

import time

import pytest

from mtclar.model.errors import MediaError
from mtclar.settings import Settings
from mtclar_backend.app import create_app
from mtclar_backend.label_configs import VIDEO
from mtclar_backend.ls_api import LabelStudioAPI
from mtclar_backend.media import MediaResolver
from mtclar_backend.runtime import Runtime

KEY = "secret-token-0123456789"


def resolver(tmp_path, label_studio, hosts=()) -> MediaResolver:
    return MediaResolver(tmp_path / "media", (), LabelStudioAPI(label_studio.url, KEY), hosts)


@pytest.mark.parametrize("path", ["/data/upload/1/x.mp4", "/x/data/local-files/?d=videos/a.mp4", "/a.mp4"])
def test_another_port_on_the_same_host_gets_nothing(tmp_path, listener_factory, path):
    label_studio, other = listener_factory(), listener_factory()
    other.routes["/"] = (200, {}, b"video bytes")
    for host in ("127.0.0.1", "localhost"):
        url = f"http://{host}:{other.server.server_address[1]}{path}"
        with pytest.raises(MediaError, match="not on Label Studio's origin"):
            resolver(tmp_path, label_studio).local_path(url, task_id=5)
    assert other.requests == [] and label_studio.requests == []


def test_another_scheme_of_label_studio_gets_nothing(tmp_path, listener_factory):
    label_studio = listener_factory()
    url = label_studio.url.replace("http://", "https://") + "/data/upload/1/x.mp4"
    with pytest.raises(MediaError, match="not on Label Studio's origin"):
        resolver(tmp_path, label_studio).local_path(url)


def test_label_studio_gets_the_key_and_a_redirect_elsewhere_does_not(tmp_path, listener_factory):
    label_studio, storage = listener_factory(), listener_factory()
    storage.routes["/bucket/"] = (200, {}, b"video bytes")
    label_studio.routes["/data/upload/"] = (302, {"Location": f"{storage.url}/bucket/x.mp4?sig=1"}, b"")
    path = resolver(tmp_path, label_studio).local_path("/data/upload/1/x.mp4", task_id=5)
    assert path.read_bytes() == b"video bytes"
    assert label_studio.authorized() == ["/data/upload/1/x.mp4"]
    assert storage.requests and storage.authorized() == []  # followed, without the key


def test_absolute_urls_on_label_studios_origin_get_the_key(tmp_path, listener_factory):
    label_studio = listener_factory()
    label_studio.routes["/data/upload/"] = (200, {}, b"bytes")
    url = label_studio.url.replace("127.0.0.1", "127.0.0.1") + "/data/upload/2/y.mp4"
    assert resolver(tmp_path, label_studio).local_path(url).read_bytes() == b"bytes"
    assert label_studio.authorized() == ["/data/upload/2/y.mp4"]


def test_media_hosts_are_fetched_without_credentials(tmp_path, listener_factory):
    label_studio, public = listener_factory(), listener_factory()
    public.routes["/"] = (200, {}, b"public bytes")
    url = f"{public.url}/clip.mp4"
    assert resolver(tmp_path, label_studio, ("127.0.0.1",)).local_path(url).read_bytes() == b"public bytes"
    assert public.requests and public.authorized() == []


def test_a_broken_download_leaves_nothing_behind(tmp_path, listener_factory):
    label_studio = listener_factory()
    label_studio.routes["/data/upload/"] = (500, {}, b"boom")
    media = resolver(tmp_path, label_studio)
    with pytest.raises(MediaError, match="500"):
        media.local_path("/data/upload/1/x.mp4")
    assert not any(media.cache_dir.glob("*")) if media.cache_dir.exists() else True


def test_missing_and_unreadable_files_outside_the_roots_read_the_same(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.mp4").write_bytes(b"x")
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    media = MediaResolver(tmp_path / "cache", (root,))
    messages = []
    for path in (str(outside), str(tmp_path / "nope.mp4"), f"file://{outside}"):
        with pytest.raises(MediaError) as error:
            media.local_path(path)
        messages.append(str(error.value).replace(path, "<path>"))
    assert len(set(messages)) == 1, messages
    assert media.local_path(str(root / "ok.mp4")) == (root / "ok.mp4").resolve()


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("security-cache")


def test_setup_cannot_point_the_backend_at_another_server(tmp_path, listener_factory, shared_cache):
    label_studio, attacker = listener_factory(), listener_factory()
    runtime = Runtime(Settings(model_dir=tmp_path / "m", cache_dir=shared_cache,
                                    label_studio_url=label_studio.url))  # no API key configured
    client = create_app(runtime).test_client()
    answer = client.post("/setup", json={"project": "3.1", "schema": VIDEO, "hostname": attacker.url,
                                         "access_token": "lent-token"})
    assert answer.status_code == 200
    # the same origin as LABEL_STUDIO_URL may lend its token (no key configured): calls go there only
    answer = client.post("/setup", json={"project": "4.1", "schema": VIDEO, "hostname": label_studio.url,
                                         "access_token": "lent-token"})
    assert answer.status_code == 200
    for _ in range(50):
        if label_studio.requests:
            break
        time.sleep(0.1)
    assert attacker.requests == []
    assert label_studio.requests and all("lent-token" in h.get("authorization", "") for _, h in label_studio.requests)


def test_setup_without_label_studio_url_ignores_the_named_server(tmp_path, listener_factory, shared_cache):
    attacker = listener_factory()
    runtime = Runtime(Settings(model_dir=tmp_path / "m", cache_dir=shared_cache))
    client = create_app(runtime).test_client()
    assert client.post("/setup", json={"project": "3.1", "schema": VIDEO, "hostname": attacker.url,
                                       "access_token": "t"}).status_code == 200
    time.sleep(0.5)
    assert attacker.requests == []


def test_the_settings_never_print_a_secret():
    config = Settings(label_studio_url="http://ls:8080", label_studio_api_key=KEY, basic_auth_user="u",
                           basic_auth_pass="p4ss-word")
    assert KEY not in repr(config) and "p4ss-word" not in repr(config)
