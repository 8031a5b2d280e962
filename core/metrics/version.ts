/** The broker's version, as package.json says (checked by a test); `$SYS/broker/version`. */
export const BROKER_VERSION = "0.1.0";
export const BROKER_NAME = "edge-mqtt";
