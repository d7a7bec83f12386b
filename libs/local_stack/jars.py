"""Kafka's jars: fetched once with Maven from kafka-pom.xml into a cache outside the repo."""

from __future__ import annotations

import hashlib
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from local_stack import procs, state
from local_stack.state import StackError, say

POM = state.PACKAGE_DIR / "kafka-pom.xml"


def version() -> str:
    """`kafka.version` from kafka-pom.xml: the one place the version is written."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    found = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    text = "" if found is None or found.text is None else found.text.strip()
    if not text:
        raise StackError("kafka", f"no <kafka.version> in {POM}")
    return text


def ensure_jars() -> Path:
    """The folder of Kafka's jars; (re)fetched with Maven when missing, incomplete (no
    marker) or fetched for a different kafka-pom.xml (the marker holds the pom's hash)."""
    ver = version()
    cache = state.cache_root() / f"kafka-{ver}"
    libs, marker = cache / "libs", cache / ".complete"
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    main_jar = libs / f"kafka_2.13-{ver}.jar"
    if main_jar.is_file() and marker.is_file() and marker.read_text().strip() == digest:
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("kafka", f"Maven (mvn) not found; it fetches Kafka {ver} (Debian: maven)")
    marker.unlink(missing_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "mvn.log"
    say("kafka", f"fetching Kafka {ver} jars with Maven into {libs} ...")
    argv = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
    argv += [f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    code = procs.run_logged(argv, log)
    if code != 0 or not main_jar.is_file():
        why = f"exit {code}; is Maven Central reachable?"
        raise StackError("kafka", f"Maven failed to fetch the jars ({why})", [log])
    marker.write_text(digest + "\n")
    return libs
