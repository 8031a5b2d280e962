// Debian's Python with paho-mqtt (python3-paho-mqtt), for the tests that run Python clients.
import { execFileSync } from "node:child_process";

/** Debian's interpreter: the one `apt-get install python3-paho-mqtt` installs paho-mqtt for. */
export const PYTHON = "/usr/bin/python3";

function pahoInstalled(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import paho.mqtt.client"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether paho-mqtt can be imported. CI installs it (.ci/run), so there its absence is an
 * error at once; elsewhere the Python tests are skipped and say so.
 */
export const pahoAvailable = pahoInstalled();
if (!pahoAvailable && process.env.CI) throw new Error("python3-paho-mqtt is not installed (apt-get install python3-paho-mqtt)");
