export * from "./alert";
export * from "./families";
export * from "./gauges";
export * from "./negotiate";
export * from "./prometheus";
export * from "./rates";
export * from "./sys";
export * from "./version";
