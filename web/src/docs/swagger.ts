// Swagger UI from the pinned swagger-ui-dist package, served by the app itself (issue 19):
// no CDN, no inline script, so the docs page's policy is 'self' only.
import 'swagger-ui-dist/swagger-ui.css';
import SwaggerUIBundle from 'swagger-ui-dist/swagger-ui-es-bundle.js';

SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  // The OAuth2 password flow posts the form to /auth/login: no redirect page is needed.
  persistAuthorization: false,
  // The public validator badge would ask validator.swagger.io about the schema.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
