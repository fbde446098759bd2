// Entry point for `pulumi up` with an official Pulumi install (Pulumi.yaml runs the compiled dist/index.js).
// `npm run up` runs the same program through the Automation API (scripts/stack.ts).
import { workstationProgram } from "./components/program";

export = workstationProgram();
