import { apiRouter } from "./router";

/** /api/v1/retained (being built: issue 11). */
export const retained = apiRouter();
