import { apiRouter } from "./router";

/** /api/v1/devices (being built: issue 11). */
export const devices = apiRouter();
