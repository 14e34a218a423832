#!/usr/bin/env python3
"""Real-browser tests of `udp studio`: headless Chromium driven by Selenium, Python peers on loopback.

Usage: studio_browser.py UDP_BINARY [SCREENSHOT.png]
Every check prints "ok: ..." or raises; the exit status is 0 only when all passed. Sends only to 127.0.0.1.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

UDP = sys.argv[1]
SCREENSHOT = sys.argv[2] if len(sys.argv) > 2 else None
XSS = "<img src=x onerror=alert(1)>"


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok:", what, flush=True)


class Studio:
    """A `udp studio` process on 127.0.0.1, any free port, with its own configuration directory."""

    def __init__(self, config, extra=()):
        env = dict(os.environ, XDG_CONFIG_HOME=config)
        env.pop("DISPLAY", None)
        self.proc = subprocess.Popen([UDP, "studio", "--http", "127.0.0.1:0", "--no-browser", *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        self.url = self.proc.stdout.readline().strip()
        m = re.match(r"http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]+)$", self.url)
        if not m:
            raise AssertionError("no URL printed: %r %r" % (self.url, self.proc.stderr.read()))
        self.port, self.token = int(m.group(1)), m.group(2)

    def listener_port(self):
        line = self.proc.stderr.readline()
        return int(re.search(r":(\d+) \(UDP\)", line).group(1))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("udp studio did not stop on SIGTERM")
        return code


def request(studio, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", studio.port, timeout=5)
    conn.putrequest(method, path, skip_host=True)
    headers = dict(headers or {})
    headers.setdefault("Host", "127.0.0.1:%d" % studio.port)
    data = json.dumps(body).encode() if body is not None else None
    if data:
        headers["Content-Type"] = "application/json"
        headers["Content-Length"] = str(len(data))
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders(data)
    r = conn.getresponse()
    out = r.status, r.read()
    conn.close()
    return out


def udp_socket(port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    s.settimeout(5)
    return s


def free_udp_port():
    s = udp_socket()
    port = s.getsockname()[1]
    s.close()
    return port


def browser():
    options = webdriver.ChromeOptions()
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,960",
                "--no-first-run", "--disable-extensions", "--proxy-server=direct://", "--proxy-bypass-list=*"]:
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    return webdriver.Chrome(options=options, service=service)


def wait(driver, condition, what, timeout=8):
    try:
        WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception:
        errors = driver.execute_script("return [...document.querySelectorAll('.error, .status')].map(e => e.id + ': ' + e.textContent)")
        driver.save_screenshot(os.path.join(tempfile.gettempdir(), "udp-studio-failure.png"))
        raise AssertionError("timed out: %s (page says %s)" % (what, errors))
    print("ok:", what, flush=True)


def rows(driver):
    return driver.execute_script("""
        return [...document.querySelectorAll('.log-row')].filter(r => r.style.display !== 'none').map(r => ({
          dir: r.querySelector('.c-dir').textContent, local: r.querySelector('.c-local').textContent,
          remote: r.querySelector('.c-remote').textContent, len: r.querySelector('.c-len').textContent,
          text: r.querySelector('.c-text').textContent, hex: r.querySelector('.c-hex').textContent,
          marks: r.querySelector('.c-marks').textContent}));""")


def text_of(driver, element_id):
    # Read in one script: the page re-renders lists every second, so a held element can go stale.
    return driver.execute_script("return document.getElementById(arguments[0]).textContent", element_id)


def set_value(driver, element_id, value):
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def main():
    config = tempfile.mkdtemp(prefix="udp-studio-browser-")
    studio = Studio(config, ["--udp", "127.0.0.1:0"])
    listen_port = studio.listener_port()
    driver = browser()
    try:
        # --- refusals -------------------------------------------------------------------------------------------
        check(request(studio, "GET", "/")[0] == 401, "the page without the token is refused (401)")
        check(request(studio, "GET", "/api/datagrams")[0] == 401, "the API without the token is refused (401)")
        check(request(studio, "GET", "/api/events?token=" + "0" * 64)[0] == 403, "a wrong token is refused (403)")
        auth = {"Authorization": "Bearer " + studio.token}
        check(request(studio, "GET", "/api/datagrams", dict(auth, Host="rebind.example:%d" % studio.port))[0] == 403,
              "a foreign Host (DNS rebinding) is refused (403)")
        status, _ = request(studio, "POST", "/api/send", dict(auth, Origin="http://evil.example"), {"to": "127.0.0.1:9", "text": "x"})
        check(status == 403, "a state-changing request from a foreign Origin is refused (403)")
        check(request(studio, "GET", "/api/events?token=" + studio.token, {"Origin": "http://evil.example"})[0] == 403,
              "the live stream for a foreign Origin is refused (403)")
        driver.get("http://127.0.0.1:%d/" % studio.port)
        check("token" in driver.find_element(By.TAG_NAME, "body").text and not driver.find_elements(By.ID, "log"),
              "a browser without the token gets no page")

        # --- the page, and datagrams from a Python peer ----------------------------------------------------------
        driver.get(studio.url)
        wait(driver, lambda d: text_of(d, "connection") == "live", "the page loads with the token and goes live")
        peer = udp_socket()
        peer_port = peer.getsockname()[1]
        peer.sendto("hello from python ✓".encode(), ("127.0.0.1", listen_port))
        peer.sendto(b"\x00\x01binary\xff", ("127.0.0.1", listen_port))
        peer.sendto(XSS.encode(), ("127.0.0.1", listen_port))
        wait(driver, lambda d: any(r["text"] == XSS for r in rows(d)), "datagrams from a Python peer appear live")
        r = [r for r in rows(driver) if r["text"] == "hello from python ✓"][0]
        check(r["remote"] == "127.0.0.1:%d" % peer_port and r["dir"] == "IN" and r["local"] == str(listen_port),
              "a row shows the sender's address and port and the local port")
        check(r["hex"] == " ".join("%02x" % b for b in "hello from python ✓".encode()) and r["len"] == str(len("hello from python ✓".encode())),
              "a row shows the length and the hex")
        b = [r for r in rows(driver) if r["len"] == "9"][0]
        check(b["text"] == "\\0\\x01binary\\xff" and b["hex"] == "00 01 62 69 6e 61 72 79 ff", "binary shows escaped, with exact hex")
        peer.sendto("你好，世界".encode("gbk"), ("127.0.0.1", listen_port))
        wait(driver, lambda d: any(r["hex"] == "c4 e3 ba c3 a3 ac ca c0 bd e7" for r in rows(d)), "a GBK datagram arrives")
        driver.execute_script("const s = document.getElementById('show-encoding'); s.value = 'gbk'; s.dispatchEvent(new Event('change'));")
        wait(driver, lambda d: any(r["text"] == "你好，世界" for r in rows(d)), "the log shows text in the chosen encoding (GBK)")
        driver.execute_script("const s = document.getElementById('show-encoding'); s.value = 'utf8'; s.dispatchEvent(new Event('change'));")
        check(not driver.find_elements(By.CSS_SELECTOR, "#log img"), "the XSS payload made no element")
        try:
            driver.switch_to.alert
            raise AssertionError("an alert opened")
        except NoAlertPresentException:
            print("ok: the XSS payload renders as text and runs nothing", flush=True)

        for i in range(8):
            peer.sendto(("reading %d: temperature=%d.%d C" % (i, 20 + i % 5, i)).encode(), ("127.0.0.1", listen_port))
            time.sleep(0.05)

        # --- the send form: text and hex, byte-exact -----------------------------------------------------------
        receiver = udp_socket()
        rport = receiver.getsockname()[1]
        set_value(driver, "send-to", "127.0.0.1:%d" % rport)
        set_value(driver, "send-text", "text from the page ✓ <b>")
        check(driver.find_element(By.ID, "send-hex").get_attribute("value").startswith("74 65 78 74"), "typing text fills the hex view")
        driver.find_element(By.ID, "send-button").click()
        data, _ = receiver.recvfrom(65535)
        check(data == "text from the page ✓ <b>".encode(), "a text datagram from the form arrives byte-exact")
        set_value(driver, "send-hex", "00 01 fe ff 0d 0a")
        check(driver.find_element(By.ID, "send-text").get_attribute("value") == "\\0\\x01\\ufffd\\ufffd\\r\\n",
              "typing hex fills the text view (escaped)")
        driver.find_element(By.ID, "send-button").click()
        data, _ = receiver.recvfrom(65535)
        check(data == b"\x00\x01\xfe\xff\r\n", "a hex datagram from the form arrives byte-exact")
        # A reply from the address a datagram went to shows its round-trip time.
        echo = udp_socket()
        set_value(driver, "send-to", "127.0.0.1:%d" % echo.getsockname()[1])
        for i in range(3):
            set_value(driver, "send-text", "are you there? %d" % i)
            driver.find_element(By.ID, "send-button").click()
            data, addr = echo.recvfrom(65535)
            echo.sendto(b"yes: " + data, addr)
        wait(driver, lambda d: sum(1 for r in rows(d) if r["text"].startswith("yes: ") and "rtt" in r["marks"]) == 3,
             "replies to what the page sent show their round-trip time")
        set_value(driver, "send-to", "127.0.0.1:%d" % rport)
        set_value(driver, "send-hex", "0g")
        driver.find_element(By.ID, "send-button").click()
        wait(driver, lambda d: "hex" in text_of(d, "send-status"), "bad hex is an inline message")
        receiver.settimeout(0.5)
        try:
            receiver.recvfrom(65535)
            raise AssertionError("bad hex was sent")
        except socket.timeout:
            print("ok: bad hex sends nothing", flush=True)

        # --- a listener added from the page ---------------------------------------------------------------------
        new_port = free_udp_port()
        set_value(driver, "listener-address", "127.0.0.1:%d" % new_port)
        driver.find_element(By.CSS_SELECTOR, "#listener-form button").click()
        wait(driver, lambda d: ":%d" % new_port in text_of(d, "listener-list"),
             "a listener added from the page is listed")
        peer.sendto(b"to the new listener", ("127.0.0.1", new_port))
        wait(driver, lambda d: any(r["text"] == "to the new listener" and r["local"] == str(new_port) for r in rows(d)),
             "the listener added from the page receives")

        # --- an auto-reply rule --------------------------------------------------------------------------------
        driver.execute_script("""const s = document.getElementById('rule-listener');
            s.value = [...s.options].find(o => o.text.includes(':%d')).value; s.dispatchEvent(new Event('change'));""" % new_port)
        driver.execute_script("document.getElementById('rule-match').value = 'regex'")
        set_value(driver, "rule-pattern", r"^ping (\w+)")
        set_value(driver, "rule-reply", "pong {1} #{count}")
        driver.find_element(By.CSS_SELECTOR, "#rule-form button").click()
        wait(driver, lambda d: "pong" in text_of(d, "rule-list"), "the rule is listed")
        peer.sendto(b"ping studio", ("127.0.0.1", new_port))
        data, _ = peer.recvfrom(65535)
        check(data == b"pong studio #2", "the auto-reply rule answers (with its capture and count)")
        wait(driver, lambda d: any("auto-reply" in r["marks"] for r in rows(d)), "the auto-reply shows in the log")

        # --- a saved packet survives a restart --------------------------------------------------------------------
        set_value(driver, "send-to", "127.0.0.1:%d" % rport)
        set_value(driver, "send-text", "saved hello")
        set_value(driver, "save-name", "greet")
        driver.find_element(By.ID, "save-button").click()
        wait(driver, lambda d: "greet" in text_of(d, "saved-list"), "a packet saved from the page is listed")
        time.sleep(1.2)
        if SCREENSHOT:
            driver.execute_script("""const rows = [...document.querySelectorAll('.log-row')]
                .filter(r => r.style.display !== 'none' && r.querySelector('.c-text').textContent === 'ping studio');
                if (rows[0]) rows[0].click();""")
            time.sleep(0.3)
            driver.save_screenshot(SCREENSHOT)
            print("ok: screenshot saved to", SCREENSHOT, flush=True)
        check(studio.stop() == 0, "SIGTERM stops the studio cleanly (exit 0)")
        studio = Studio(config, ["--udp", "127.0.0.1:0"])
        flood_port = studio.listener_port()
        driver.get(studio.url)
        wait(driver, lambda d: "greet" in text_of(d, "saved-list"), "the saved packet is there after a restart")
        receiver.settimeout(5)
        driver.execute_script("""[...document.querySelectorAll('#saved-list li')].find(li => li.dataset.name === 'greet')
            .querySelector('button').click();""")
        data, _ = receiver.recvfrom(65535)
        check(data == b"saved hello", "one click sends the saved packet")

        # --- a sequence: created, run, edited, stopped from the page ------------------------------------------------
        set_value(driver, "send-to", "127.0.0.1:%d" % rport)
        set_value(driver, "send-text", "saved bye")
        set_value(driver, "save-name", "bye")
        driver.find_element(By.ID, "save-button").click()
        wait(driver, lambda d: "bye" in text_of(d, "saved-list"), "a second packet is saved")
        set_value(driver, "sequence-name", "hello then bye")
        set_value(driver, "sequence-steps", "greet 300\nbye")
        driver.find_element(By.CSS_SELECTOR, "#sequence-form button[type=submit]").click()
        wait(driver, lambda d: "hello then bye (2 steps, 300 ms)" in text_of(d, "saved-list"), "the sequence made on the page is listed")
        run_sequence = """[...document.querySelectorAll('#saved-list li')].find(li => li.dataset.sequence === 'hello then bye')
            .querySelector('button').click();"""
        driver.execute_script(run_sequence)
        first, _ = receiver.recvfrom(65535)
        started = time.time()
        second, _ = receiver.recvfrom(65535)
        gap = time.time() - started
        check((first, second) == (b"saved hello", b"saved bye") and gap >= 0.25,
              "running it sends its packets in order, with the step's delay between (%.3f s)" % gap)
        wait(driver, lambda d: "sent 2" in text_of(d, "send-status"), "the page reports the run")
        driver.execute_script("""[...document.querySelectorAll('#saved-list li')].find(li => li.dataset.sequence === 'hello then bye')
            .querySelectorAll('button')[1].click();""")
        check(driver.execute_script("return document.getElementById('sequence-steps').value") == "greet 300\nbye 0",
              "Edit loads the sequence into the editor")
        set_value(driver, "sequence-steps", "greet 20000\nbye 0")
        driver.find_element(By.CSS_SELECTOR, "#sequence-form button[type=submit]").click()
        wait(driver, lambda d: "(2 steps, 20000 ms)" in text_of(d, "saved-list"), "the edited sequence is saved")
        driver.execute_script(run_sequence)
        first, _ = receiver.recvfrom(65535)
        check(first == b"saved hello", "the edited sequence runs its first step")
        driver.find_element(By.ID, "sequence-stop").click()
        wait(driver, lambda d: "stopped after 1 sent" in text_of(d, "send-status"), "Stop ends it in its 20 s delay")
        receiver.settimeout(1)
        try:
            late, _ = receiver.recvfrom(65535)
        except socket.timeout:
            late = None
        check(late is None, "nothing is sent after the stop (got %r)" % (late,))
        receiver.settimeout(5)

        # --- many datagrams: the DOM stays bounded and the page answers --------------------------------------------
        wait(driver, lambda d: text_of(d, "connection") == "live", "the page is live again")
        for i in range(20000):
            peer.sendto(b"flood %d" % i, ("127.0.0.1", flood_port))
            if i % 500 == 499:
                time.sleep(0.005)
        def counted():
            status, body = request(studio, "GET", "/api/listeners", {"Authorization": "Bearer " + studio.token})
            listener = json.loads(body)[0]
            return listener["counters"]["received"] + (listener["kernelDrops"] or 0)
        deadline = time.time() + 20
        while counted() < 20000 and time.time() < deadline:
            time.sleep(0.1)
        check(counted() == 20000, "every datagram is counted or reported as dropped by the kernel")
        shown = lambda d: int(re.sub(r"\D", "", text_of(d, "log-count").split(" shown")[0]) or "0")
        wait(driver, lambda d: shown(d) >= 500, "the rows reach the page (sampled when faster than it can show)", timeout=20)
        dom_rows = driver.execute_script("return document.querySelectorAll('.log-row').length")
        check(dom_rows < 200, "the DOM holds only the rows in view (%d elements for %s)" % (dom_rows, text_of(driver, "log-count")))
        started = time.time()
        driver.execute_script("const l = document.getElementById('log'); l.scrollTop = 0; l.scrollTop = l.scrollHeight / 2;")
        driver.execute_script("return document.querySelectorAll('.log-row').length")
        check(time.time() - started < 2, "scrolling through them answers at once (%.3f s)" % (time.time() - started))
    finally:
        driver.quit()
        try:
            studio.stop()
        except Exception:
            pass
        shutil.rmtree(config, ignore_errors=True)
    print("all browser checks passed", flush=True)


if __name__ == "__main__":
    main()
