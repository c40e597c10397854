// Bulwark's Swagger UI initializer, served at /docs/swagger-initializer.js in place of the
// vendored one. The docs page's CSP allows scripts and styles from this server only (no
// 'unsafe-inline'): Swagger UI itself sets its inline styles through the CSSOM (React's `style`
// props), which that CSP does not restrict, except for the topbar's logo — an inline SVG with a
// <style> element, which it blocks. The plugin below shows the same logo as an image file
// (swagger-logo.svg, colours as presentation attributes) instead.
'use strict';

window.addEventListener('load', () => {
  const LogoWithoutInlineStyle = (system) => ({
    components: {
      Logo: () => system.React.createElement('img', {
        src: './swagger-logo.svg',
        alt: 'Swagger UI',
        height: 40,
      }),
    },
  });

  window.ui = SwaggerUIBundle({
    dom_id: '#swagger-ui',
    url: '/openapi.json',
    deepLinking: true,
    tryItOutEnabled: true,
    validatorUrl: 'none',
    persistAuthorization: false,
    layout: 'StandaloneLayout',
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl, LogoWithoutInlineStyle],
  });
});
