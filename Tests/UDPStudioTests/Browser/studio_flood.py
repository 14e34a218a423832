#!/usr/bin/env python3
"""Flood measurement for `udp studio` (a measurement, not a test; sends only to 127.0.0.1).

Usage: studio_flood.py UDP_BINARY [RATE] [SECONDS]
Starts the studio with one listener, opens the page in headless Chromium, runs `udp bench flood` at RATE
datagrams/s for SECONDS, then prints what was sent, what the studio counted, the kernel's drops at its socket,
the studio's RSS before, during (sampled every 0.5 s) and after, and the page's JS heap (Chromium's
performance.memory) and row count; the last line is all of it as one JSON object (benchmarks/run reads it).
"""
import json, os, re, shutil, signal, subprocess, sys, tempfile, time, urllib.request

from selenium import webdriver

UDP = sys.argv[1]
RATE = sys.argv[2] if len(sys.argv) > 2 else "100k"
SECONDS = sys.argv[3] if len(sys.argv) > 3 else "10"


END_REPORTS = 6


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024


config = tempfile.mkdtemp()
studio = subprocess.Popen([UDP, "studio", "--http", "127.0.0.1:0", "--no-browser", "--udp", "127.0.0.1:0"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, XDG_CONFIG_HOME=config))
url = studio.stdout.readline().strip()
port = int(re.search(r":(\d+) \(UDP\)", studio.stderr.readline()).group(1))
api = url.split("/?")[0]
token = url.split("token=")[1]
options = webdriver.ChromeOptions()
for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--enable-precise-memory-info"]:
    options.add_argument(arg)
options.binary_location = shutil.which("chromium")
driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")))
try:
    driver.get(url)
    time.sleep(2)
    before = rss(studio.pid)
    heap = lambda: driver.execute_script("return performance.memory.usedJSHeapSize") // (1 << 20)
    heap_before = heap()
    flood = subprocess.Popen([UDP, "bench", "flood", "127.0.0.1:%d" % port, "--rate", RATE, "--duration", SECONDS + "s", "--json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # RSS while the flood runs: flat means the bounded history and buffers, not the traffic, set the size.
    samples = []
    while flood.poll() is None:
        samples.append(rss(studio.pid))
        time.sleep(0.5)
    flood_out, flood_err = flood.communicate()
    time.sleep(2)
    request = urllib.request.Request(api + "/api/listeners", headers={"Authorization": "Bearer " + token})
    listener = json.load(urllib.request.urlopen(request))[0]
    t0 = time.time()
    driver.execute_script("return document.getElementById('log').scrollTop = 0")
    responsive = time.time() - t0
    rows = driver.execute_script("return document.getElementById('log-count').textContent")
    after, heap_after = rss(studio.pid), heap()
    sent = None
    for line in reversed(flood_out.strip().splitlines()):
        if line.startswith("{"):
            sent = json.loads(line).get("sent")
            break
    half = samples[len(samples) // 2:] or [after]
    # After its probes `udp bench flood` sends its end report 6 times (BenchFlood.endReportGaps); they reach the
    # listener like any datagram, so they are part of what it must count or see dropped.
    summary = {"rate": RATE, "seconds": float(SECONDS), "sent": sent, "end_reports": END_REPORTS, "counted": listener["counters"]["received"],
               "kernel_drops": listener["kernelDrops"] or 0, "rss_before_mib": before, "rss_max_mib": max(samples + [after]),
               "rss_half_min_mib": min(half), "rss_half_max_mib": max(half), "rss_after_mib": after,
               "heap_before_mib": heap_before, "heap_after_mib": heap_after, "rows": rows, "script_call_s": round(responsive, 3)}
    print("flood:", flood_out.strip().splitlines()[-1] if flood_out.strip() else flood_err.strip())
    print("studio counted %d, kernel drops %d" % (summary["counted"], summary["kernel_drops"]))
    print("studio RSS %d MiB before, %d MiB at most, %d MiB after" % (before, summary["rss_max_mib"], after))
    print("page JS heap %d MiB before, %d MiB after; %s; a script call answered in %.3f s" % (heap_before, heap_after, rows, responsive))
    print(json.dumps(summary))
finally:
    driver.quit()
    studio.send_signal(signal.SIGTERM)
    studio.wait(timeout=10)
    shutil.rmtree(config, ignore_errors=True)
